"""The offer cascade: expiry per urgency, next candidate, escalation, assignment by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.audit.models import AuditEvent
from telehealth.consults.models import ConsultStatus, Urgency
from telehealth.errors import Conflict, PermissionDenied
from telehealth.extensions import db
from telehealth.matching import services
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.sweeper import sweep_once

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture()
def clinician(make_clinic, make_user):
    clock.freeze(START)
    return make_user(Role.CLINICIAN, clinic=make_clinic(languages=("en",)))


def _offers(consult):
    return list(db.session.scalars(db.select(Offer).where(Offer.consult_id == consult.id)
                                   .order_by(Offer.id)))


def _actions(action):
    return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == action)))


@pytest.mark.parametrize(("urgency", "minutes", "fanout"), [
    (Urgency.EMERGENCY, 15, 3), (Urgency.URGENT, 120, 1), (Urgency.ROUTINE, 24 * 60, 1),
])
def test_offer_expiry_and_fanout_per_urgency(clinician, make_specialist, make_consult,
                                             urgency, minutes, fanout):
    for _i in range(4):
        make_specialist()
    consult = make_consult(clinician, urgency=urgency)
    offers = _offers(consult)
    assert len(offers) == fanout
    assert {o.expires_at for o in offers} == {START + timedelta(minutes=minutes)}


def test_expiry_is_configurable(app, clinician, make_specialist, make_consult):
    make_specialist()
    app.config["OFFER_EXPIRY_MINUTES"] = {**app.config["OFFER_EXPIRY_MINUTES"], "urgent": 30}
    try:
        consult = make_consult(clinician)
    finally:
        app.config["OFFER_EXPIRY_MINUTES"] = {**app.config["OFFER_EXPIRY_MINUTES"],
                                              "urgent": 120}
    assert _offers(consult)[0].expires_at == START + timedelta(minutes=30)


def test_decline_then_expiry_then_escalation(clinician, make_specialist, make_consult,
                                             make_user):
    first, second, third = (make_specialist(name=n) for n in ("First", "Second", "Third"))
    coordinator = make_user(Role.COORDINATOR)
    consult = make_consult(clinician)
    assert [o.specialist_id for o in _offers(consult)] == [first.id]

    services.decline_consult(consult, first)
    db.session.commit()
    assert [(o.specialist_id, o.status) for o in _offers(consult)] == [
        (first.id, OfferStatus.DECLINED), (second.id, OfferStatus.PENDING)]

    # Before the deadline the sweeper leaves the offer alone; after it, the next one gets it.
    clock.freeze(START + timedelta(minutes=119))
    assert sweep_once().expired == 0
    clock.freeze(START + timedelta(minutes=121))
    result = sweep_once()
    assert (result.expired, result.advanced) == (1, 1)
    assert [o.status for o in _offers(consult)] == [
        OfferStatus.DECLINED, OfferStatus.EXPIRED, OfferStatus.PENDING]
    assert _offers(consult)[2].specialist_id == third.id

    clock.freeze(START + timedelta(hours=5))
    sweep_once()
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED
    assert len(_actions("consult.escalated")) == 1
    # Running it again changes nothing.
    assert sweep_once().advanced == 0
    assert len(_actions("consult.escalated")) == 1

    services.assign_consult(consult, second, coordinator, note="knows the clinic")
    db.session.commit()
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ACCEPTED and consult.specialist_id == second.id
    [event] = _actions("consult.assigned")
    assert event.actor_id == coordinator.id and "knows the clinic" in event.detail


def test_emergency_waits_for_all_three_before_moving_on(clinician, make_specialist,
                                                        make_consult):
    people = [make_specialist() for _i in range(4)]
    consult = make_consult(clinician, urgency=Urgency.EMERGENCY)
    services.decline_consult(consult, people[0])
    db.session.commit()
    assert len(_offers(consult)) == 3  # two still deciding
    services.decline_consult(consult, people[1])
    services.decline_consult(consult, people[2])
    db.session.commit()
    assert _offers(consult)[-1].specialist_id == people[3].id


def test_only_coordinators_assign_and_not_once_taken(clinician, make_specialist, make_consult,
                                                     make_user):
    coordinator = make_user(Role.COORDINATOR)
    specialist = make_specialist()
    other = make_specialist()
    consult = make_consult(clinician)
    with pytest.raises(PermissionDenied):
        services.assign_consult(consult, other, clinician)
    services.accept_consult(consult, specialist)
    db.session.commit()
    with pytest.raises(Conflict):
        services.assign_consult(consult, other, coordinator)


def test_sweep_cli(app, clinician, make_specialist, make_consult):
    make_specialist()
    consult = make_consult(clinician)
    clock.freeze(START + timedelta(hours=3))
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "expired 1 offer(s), advanced 1 consult(s)" in result.output
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED


def test_background_sweeper_runs_in_the_app(app, clinician, make_specialist, make_consult):
    import time

    from telehealth.matching.sweeper import start_background_sweeper, stop_background_sweeper

    make_specialist()
    consult = make_consult(clinician)
    clock.freeze(START + timedelta(hours=3))
    interval = app.config["SWEEPER_INTERVAL_SECONDS"]
    app.config["SWEEPER_INTERVAL_SECONDS"] = 0.05
    try:
        start_background_sweeper(app)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            db.session.expire_all()
            if db.session.get(type(consult), consult.id).status == ConsultStatus.ESCALATED:
                break
            time.sleep(0.05)
    finally:
        stop_background_sweeper(app)
        app.config["SWEEPER_INTERVAL_SECONDS"] = interval
        time.sleep(0.2)  # let a run in progress finish before the tables are emptied
    assert db.session.get(type(consult), consult.id).status == ConsultStatus.ESCALATED
