"""Races on PostgreSQL: many accepts of one consult, two sweepers over the same offers.

They need real concurrency (row locks, SKIP LOCKED), so they run only when the test session
is on PostgreSQL (TELEHEALTH_TEST_DATABASE_URL); without it they skip, and fail in CI.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, insert, select

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User
from telehealth.audit.models import AuditEvent
from telehealth.consults.models import Consult, ConsultMode, ConsultStatus, Sex, Urgency
from telehealth.errors import Conflict
from telehealth.extensions import db
from telehealth.matching import services
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.sweeper import SweepResult, sweep_once
from tests.conftest import another_app, need_service

pytestmark = pytest.mark.postgres
THREADS = 50


@pytest.fixture(scope="module")
def race_app(app: Flask) -> Iterator[Flask]:
    """A second app on the session's PostgreSQL database, with a connection per thread."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not str(url).startswith("postgresql"):
        need_service("PostgreSQL", "set TELEHEALTH_TEST_DATABASE_URL to a PostgreSQL database")
    other = another_app({
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": THREADS + 5, "max_overflow": 5},
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "SWEEPER_INTERVAL_SECONDS": 0,
    })
    yield other
    with other.app_context():
        db.engine.dispose()


def _run_at_once(count: int, work) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = work(index, barrier)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _two_sweepers(race_app: Flask) -> list[SweepResult]:
    """Two sweeps started at the same moment, each with its own connection."""

    def sweep(index: int, barrier: threading.Barrier) -> object:
        with race_app.app_context():
            try:
                barrier.wait(timeout=60)
                return sweep_once(batch=100)
            finally:
                db.session.remove()

    results = _run_at_once(2, sweep)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results  # type: ignore[return-value]


def test_fifty_specialists_accept_at_once_exactly_one_wins(race_app, make_clinic, make_user,
                                                          make_consult):
    clinician = make_user(Role.CLINICIAN, clinic=make_clinic())
    specialists = [make_user(Role.SPECIALIST) for _i in range(THREADS)]
    consult = make_consult(clinician, submit=False)
    db.session.execute(insert(Offer), [
        {"consult_id": consult.id, "specialist_id": s.id, "status": OfferStatus.PENDING,
         "expires_at": clock.now() + timedelta(hours=1)} for s in specialists])
    db.session.execute(db.update(Consult).where(Consult.id == consult.id)
                       .values(status=ConsultStatus.OFFERED))
    db.session.commit()
    ids = [s.id for s in specialists]
    consult_id = consult.id  # ORM objects of this session must not be touched from threads

    def accept(index: int, barrier: threading.Barrier) -> str:
        with race_app.test_request_context():
            try:
                mine = db.session.get(Consult, consult_id)
                me = db.session.get(User, ids[index])
                barrier.wait(timeout=60)
                services.accept_consult(mine, me)
                db.session.commit()
                return "ok"
            except Conflict as exc:
                db.session.rollback()
                return exc.message
            finally:
                db.session.remove()

    results = _run_at_once(THREADS, accept)
    # A thread failing before the barrier breaks it for all the others: show that one first.
    errors = sorted((r for r in results if isinstance(r, BaseException)),
                    key=lambda r: isinstance(r, threading.BrokenBarrierError))
    assert not errors, errors[:3]
    assert Counter(results)["ok"] == 1
    assert Counter(results)["This consult has already been taken."] == THREADS - 1
    db.session.expire_all()
    winner = ids[results.index("ok")]
    assert db.session.get(Consult, consult_id).specialist_id == winner
    statuses = Counter(db.session.scalars(select(Offer.status)))
    assert statuses == {OfferStatus.ACCEPTED: 1, OfferStatus.WITHDRAWN: THREADS - 1}
    assignments = db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "consult.status", AuditEvent.detail.contains('"new": "accepted"')))
    assert assignments == 1


def test_two_sweepers_expire_each_offer_once_and_advance_each_consult_once(
        race_app, make_clinic, make_user, make_specialty):
    total = 1000
    clinic = make_clinic(languages=("en",))
    clinician = make_user(Role.CLINICIAN, clinic=clinic)
    first = make_user(Role.SPECIALIST, specialties=("cardiology", "dermatology"))
    second = make_user(Role.SPECIALIST, specialties=("cardiology",))
    cardiology, dermatology = make_specialty("cardiology"), make_specialty("dermatology")
    now = clock.now()
    consult_ids = list(db.session.scalars(insert(Consult).returning(Consult.id), [
        {"clinic_id": clinic.id, "created_by_id": clinician.id, "status": ConsultStatus.OFFERED,
         "patient_ref": f"P{i}", "patient_sex": Sex.FEMALE, "presenting_problem": "Pain",
         "question": "?", "specialty_id": (cardiology if i % 2 else dermatology).id,
         "urgency": Urgency.URGENT, "mode": ConsultMode.WRITTEN, "languages": "en"}
        for i in range(total)]))
    db.session.execute(insert(Offer), [
        {"consult_id": cid, "specialist_id": first.id, "status": OfferStatus.PENDING,
         "created_at": now - timedelta(hours=3), "expires_at": now - timedelta(hours=1)}
        for cid in consult_ids])
    db.session.commit()

    results = _two_sweepers(race_app)
    assert sum(r.expired for r in results) == total
    assert sum(r.advanced for r in results) == total

    db.session.expire_all()
    expired = list(db.session.scalars(select(AuditEvent.detail).where(
        AuditEvent.action == "offer.expired")))
    assert len(expired) == len(set(expired)) == total
    offers_per_consult = Counter(db.session.scalars(select(Offer.consult_id)))
    by_specialty = dict(db.session.execute(select(Consult.id, Consult.specialty_id)).all())
    statuses = dict(db.session.execute(select(Consult.id, Consult.status)).all())
    escalations = Counter(db.session.scalars(select(AuditEvent.consult_id).where(
        AuditEvent.action == "consult.escalated")))
    for cid in consult_ids:
        if by_specialty[cid] == cardiology.id:  # moved on to the second cardiologist, once
            assert offers_per_consult[cid] == 2 and statuses[cid] == ConsultStatus.OFFERED
        else:  # nobody else: escalated, once
            assert statuses[cid] == ConsultStatus.ESCALATED and escalations[cid] == 1
    assert db.session.scalar(select(func.count(Offer.id)).where(
        Offer.status == OfferStatus.PENDING, Offer.specialist_id == second.id)) == total // 2


def _escalated_consults(make_clinic, make_user, count: int) -> list[int]:
    clinic = make_clinic(languages=("en",))
    clinician = make_user(Role.CLINICIAN, clinic=clinic)
    specialty_id = db.session.scalar(select(Specialty.id).where(Specialty.code == "cardiology"))
    ids = list(db.session.scalars(insert(Consult).returning(Consult.id), [
        {"clinic_id": clinic.id, "created_by_id": clinician.id,
         "status": ConsultStatus.ESCALATED, "patient_ref": f"P{i}", "patient_sex": Sex.FEMALE,
         "presenting_problem": "Pain", "question": "?", "specialty_id": specialty_id,
         "urgency": Urgency.URGENT, "mode": ConsultMode.WRITTEN, "languages": "en",
         "submitted_at": clock.now()}
        for i in range(count)]))
    db.session.commit()
    return ids


def _reoffer_events() -> Counter[int]:
    return Counter(db.session.scalars(select(AuditEvent.consult_id).where(
        AuditEvent.action == "consult.reoffered")))


def test_two_sweepers_reoffer_each_escalated_consult_once(race_app, make_clinic, make_user):
    total = 300
    back = make_user(Role.SPECIALIST)  # eligible: available all week, never asked
    consult_ids = _escalated_consults(make_clinic, make_user, total)

    results = _two_sweepers(race_app)
    assert sum(r.reoffered for r in results) == total
    db.session.expire_all()
    assert Counter(db.session.scalars(select(Offer.consult_id))) == Counter(consult_ids)
    assert set(db.session.scalars(select(Offer.specialist_id))) == {back.id}
    assert _reoffer_events() == Counter(consult_ids)
    assert set(db.session.scalars(select(Consult.status))) == {ConsultStatus.OFFERED}


def test_the_sweeper_leaves_a_consult_a_coordinator_is_assigning(race_app, make_clinic,
                                                                 make_user):
    make_user(Role.SPECIALIST)  # eligible for the sweeper
    chosen, coordinator = make_user(Role.SPECIALIST), make_user(Role.COORDINATOR)
    [consult_id] = _escalated_consults(make_clinic, make_user, 1)
    ids = (chosen.id, coordinator.id)
    locked, swept = threading.Event(), threading.Event()

    def act(index: int, barrier: threading.Barrier) -> object:
        with race_app.test_request_context():
            try:
                if index == 0:  # the coordinator: holds the row while the sweeper runs
                    consult = db.session.get(Consult, consult_id)
                    specialist, me = (db.session.get(User, i) for i in ids)
                    services.assign_consult(consult, specialist, me)
                    locked.set()
                    assert swept.wait(timeout=60)
                    db.session.commit()
                    return "assigned"
                assert locked.wait(timeout=60)
                try:
                    return sweep_once()
                finally:
                    swept.set()
            finally:
                db.session.remove()

    results = _run_at_once(2, act)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert results[0] == "assigned" and results[1].reoffered == 0  # type: ignore[union-attr]
    db.session.expire_all()
    consult = db.session.get(Consult, consult_id)
    assert consult.status == ConsultStatus.ACCEPTED and consult.specialist_id == chosen.id
    assert db.session.scalar(select(func.count(Offer.id))) == 0
    assert sweep_once().reoffered == 0 and _reoffer_events() == Counter()


def test_a_coordinator_assigning_during_a_reoffer_waits_then_wins_once(race_app, make_clinic,
                                                                      make_user):
    back = make_user(Role.SPECIALIST)
    chosen, coordinator = make_user(Role.SPECIALIST), make_user(Role.COORDINATOR)
    _on_leave_until_tomorrow(chosen)
    [consult_id] = _escalated_consults(make_clinic, make_user, 1)
    ids = (chosen.id, coordinator.id)
    offered = threading.Event()

    def act(index: int, barrier: threading.Barrier) -> object:
        with race_app.test_request_context():
            try:
                if index == 0:  # the sweeper's step, committed only once the coordinator waits
                    assert services.reoffer_if_candidate(consult_id, skip_locked=True)
                    offered.set()
                    import time

                    time.sleep(0.5)
                    db.session.commit()
                    return "reoffered"
                assert offered.wait(timeout=60)
                consult = db.session.get(Consult, consult_id)
                specialist, me = (db.session.get(User, i) for i in ids)
                services.assign_consult(consult, specialist, me)  # blocks on the row lock
                db.session.commit()
                return "assigned"
            finally:
                db.session.remove()

    results = _run_at_once(2, act)
    assert results == ["reoffered", "assigned"], results
    db.session.expire_all()
    consult = db.session.get(Consult, consult_id)
    assert consult.status == ConsultStatus.ACCEPTED and consult.specialist_id == chosen.id
    assert list(db.session.execute(select(Offer.specialist_id, Offer.status))) == [
        (back.id, OfferStatus.WITHDRAWN)]
    accepted = db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "consult.status", AuditEvent.detail.contains('"new": "accepted"')))
    assert accepted == 1


def _on_leave_until_tomorrow(user: User) -> None:
    from telehealth.roster.models import LeavePeriod

    db.session.add(LeavePeriod(user_id=user.id, starts_at=clock.now() - timedelta(days=1),
                               ends_at=clock.now() + timedelta(days=1), reason="away"))
    db.session.commit()
