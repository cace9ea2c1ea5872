"""Escalated consults are offered again when someone not asked before can take them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.audit.models import AuditEvent
from telehealth.consults.models import ConsultStatus, Urgency
from telehealth.extensions import db
from telehealth.matching import services
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.sweeper import sweep_once
from telehealth.roster.models import CredentialStatus, LeavePeriod
from telehealth.roster.services import get_profile, remove_leave, verify_credential

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture()
def clinician(make_clinic, make_user):
    clock.freeze(START)
    return make_user(Role.CLINICIAN, clinic=make_clinic(languages=("en",)))


@pytest.fixture()
def coordinator(make_user):
    return make_user(Role.COORDINATOR)


def _offers(consult):
    return [(o.specialist_id, o.status) for o in db.session.scalars(
        db.select(Offer).where(Offer.consult_id == consult.id).order_by(Offer.id))]


def _reoffers(consult):
    return [json.loads(e.detail) for e in db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action == "consult.reoffered",
                                    AuditEvent.consult_id == consult.id))]


def _on_leave(user, until):
    db.session.add(LeavePeriod(user_id=user.id, starts_at=START - timedelta(days=2),
                               ends_at=until, reason="holiday"))
    db.session.commit()


def _escalated_on_dashboard(client, auth, coordinator):
    auth.login(coordinator)
    page = client.get("/").text
    auth.logout()
    return page.split('<ul id="escalated-list">')[1].split("</ul>")[0]


def test_specialist_back_from_leave_is_offered_the_escalated_consult(
        client, auth, clinician, coordinator, make_specialist, make_consult):
    back = make_specialist(name="Back")
    _on_leave(back, until=START + timedelta(hours=1))
    consult = make_consult(clinician)
    assert consult.status == ConsultStatus.ESCALATED and _offers(consult) == []
    assert consult.reference in _escalated_on_dashboard(client, auth, coordinator)

    # Still on leave: the sweep leaves it with the coordinators.
    assert sweep_once().reoffered == 0
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED

    clock.freeze(START + timedelta(hours=1, minutes=1))
    assert sweep_once().reoffered == 1
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.OFFERED
    assert _offers(consult) == [(back.id, OfferStatus.PENDING)]
    [offer] = services.pending_offers_for(back)
    # As long to answer as a first offer of that urgency, counted from now.
    assert offer.expires_at == clock.now() + timedelta(minutes=120)
    [reoffer] = _reoffers(consult)
    assert reoffer["reason"] == "a specialist became available"
    assert reoffer["specialist_ids"] == [back.id]
    assert consult.reference not in _escalated_on_dashboard(client, auth, coordinator)

    # Running it again changes nothing.
    assert sweep_once().reoffered == 0
    assert len(_reoffers(consult)) == 1


def test_who_declined_or_let_it_expire_is_not_asked_again(
        clinician, make_specialist, make_consult):
    first, second = make_specialist(name="First"), make_specialist(name="Second")
    consult = make_consult(clinician)
    services.decline_consult(consult, first)
    db.session.commit()
    clock.freeze(START + timedelta(hours=3))  # the second lets it expire
    sweep_once()
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED
    assert _offers(consult) == [(first.id, OfferStatus.DECLINED),
                                (second.id, OfferStatus.EXPIRED)]

    # Both are still available, but they have had their chance.
    clock.freeze(START + timedelta(hours=4))
    assert sweep_once().reoffered == 0
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED

    newcomer = make_specialist(name="Newcomer")
    assert sweep_once().reoffered == 1
    assert _offers(consult) == [(first.id, OfferStatus.DECLINED),
                                (second.id, OfferStatus.EXPIRED),
                                (newcomer.id, OfferStatus.PENDING)]

    # The newcomer declines too: escalated again, and nobody is left to ask.
    services.decline_consult(consult, newcomer)
    db.session.commit()
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED
    assert sweep_once().reoffered == 0


def test_a_window_counts_only_within_the_urgency_horizon(
        clinician, make_specialist, make_consult):
    from tests.matching.conftest import every_day

    later = make_specialist(windows=every_day(15, 20))
    _on_leave(later, until=START + timedelta(minutes=30))
    urgent = make_consult(clinician, urgency=Urgency.URGENT)
    emergency = make_consult(clinician, urgency=Urgency.EMERGENCY, patient_ref="P-002")
    assert urgent.status == emergency.status == ConsultStatus.ESCALATED

    # 13:00: the window opens in 2 hours, as long as an urgent offer waits; an emergency
    # cannot wait that long.
    clock.freeze(START + timedelta(hours=1))
    assert sweep_once().reoffered == 1
    assert _offers(urgent) == [(later.id, OfferStatus.PENDING)]
    assert _offers(emergency) == []

    clock.freeze(START + timedelta(hours=2, minutes=50))
    assert sweep_once().reoffered == 1
    assert _offers(emergency) == [(later.id, OfferStatus.PENDING)]


def test_emergencies_are_offered_first(clinician, make_specialist, make_consult):
    back = make_specialist()
    _on_leave(back, until=START + timedelta(minutes=30))
    routine = make_consult(clinician, urgency=Urgency.ROUTINE)
    emergency = make_consult(clinician, urgency=Urgency.EMERGENCY, patient_ref="P-002")
    assert services.escalated_consult_ids() == [emergency.id, routine.id]


def test_roster_changes_offer_it_at_once(clinician, coordinator, make_specialist,
                                         make_consult):
    back = make_specialist(name="Back")
    _on_leave(back, until=START + timedelta(days=5))
    unverified = make_specialist(name="Unverified")
    profile = get_profile(unverified)
    profile.credential_status = CredentialStatus.UNVERIFIED
    db.session.commit()
    first = make_consult(clinician)
    second = make_consult(clinician, patient_ref="P-002")
    assert first.status == second.status == ConsultStatus.ESCALATED

    # The coordinator cancels the leave: no sweep needed.
    leave = db.session.scalar(db.select(LeavePeriod).where(LeavePeriod.user_id == back.id))
    remove_leave(leave.id, coordinator)
    db.session.commit()
    assert _offers(first) == [(back.id, OfferStatus.PENDING)]
    assert _offers(second) == [(back.id, OfferStatus.PENDING)]
    assert _reoffers(first)[0]["reason"] == "specialist leave removed"

    services.decline_consult(first, back)
    db.session.commit()
    verify_credential(profile, coordinator, accept=True)
    db.session.commit()
    assert _offers(first) == [(back.id, OfferStatus.DECLINED),
                              (unverified.id, OfferStatus.PENDING)]
    assert _reoffers(first)[-1]["reason"] == "specialist credential verified"


def test_a_coordinator_assigning_after_the_reoffer_wins_once(
        clinician, coordinator, make_specialist, make_consult):
    back = make_specialist(name="Back")
    chosen = make_specialist(name="Chosen")
    _on_leave(back, until=START + timedelta(minutes=30))
    _on_leave(chosen, until=START + timedelta(days=5))
    consult = make_consult(clinician)
    clock.freeze(START + timedelta(hours=1))
    assert sweep_once().reoffered == 1

    # The coordinator had the page open and assigns anyway: the re-offer is withdrawn.
    services.assign_consult(consult, chosen, coordinator)
    db.session.commit()
    db.session.refresh(consult)
    assert consult.status == ConsultStatus.ACCEPTED and consult.specialist_id == chosen.id
    assert _offers(consult) == [(back.id, OfferStatus.WITHDRAWN)]
    assert sweep_once().reoffered == 0


def test_offer_cards_show_the_deadline_in_the_readers_zone(
        client, auth, clinician, make_specialist, make_consult):
    montreal = make_specialist(timezone="America/Montreal")
    make_consult(clinician)  # urgent: until 14:00 UTC, 09:00 in Montreal
    make_consult(clinician, urgency=Urgency.ROUTINE, patient_ref="P-002")  # tomorrow
    auth.login(montreal)
    page = client.get("/").text
    assert "answer by 9:00\u202fAM" in page
    assert "answer by Nov 26, 2026, 7:00:00\u202fAM" in page  # the page's one date format

    client.post("/language", data={"language": "fr", "next": "/"})
    assert "09:00" in client.get("/").text
