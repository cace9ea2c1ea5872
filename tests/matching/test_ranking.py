"""Who gets offered a consult, and in which order, at a time we set (DST included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telehealth import clock
from telehealth.accounts.models import Role, UserLanguage
from telehealth.consults.models import Consult, ConsultStatus, Urgency
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.ranking import rank_specialists
from telehealth.roster.models import CredentialStatus, LeavePeriod, ProfileStatus
from telehealth.roster.services import get_profile
from tests.matching.conftest import every_day

SUMMER_SOUTH = datetime(2026, 11, 25, tzinfo=UTC)  # Sydney on AEDT (UTC+11)
WINTER_SOUTH = datetime(2026, 7, 15, tzinfo=UTC)  # Sydney on AEST (UTC+10)


@pytest.fixture()
def clinician(make_clinic, make_user):
    return make_user(Role.CLINICIAN, clinic=make_clinic(languages=("en", "fr")))


def _offered_to(consult: Consult) -> set[int]:
    return {o.specialist_id for o in db.session.scalars(
        db.select(Offer).where(Offer.consult_id == consult.id))}


@pytest.mark.parametrize(("utc_time", "offered"), [("22:30", True), ("06:00", False)])
def test_sydney_morning_specialist_gets_urgent_consult_only_in_her_morning(
        clinician, make_specialist, make_consult, utc_time, offered):
    hour, minute = map(int, utc_time.split(":"))
    clock.freeze(SUMMER_SOUTH.replace(hour=hour, minute=minute))
    sydney = make_specialist(timezone="Australia/Sydney", windows=every_day(8, 12))
    consult = make_consult(clinician, urgency=Urgency.URGENT)
    assert (sydney.id in _offered_to(consult)) is offered
    assert consult.status == (ConsultStatus.OFFERED if offered else ConsultStatus.ESCALATED)


def test_dst_changes_who_is_available_at_the_same_utc_time(clinician, make_specialist,
                                                           make_consult):
    # 21:30 UTC is 08:30 in a Sydney summer (UTC+11) but 07:30 in a Sydney winter (UTC+10).
    clock.freeze(SUMMER_SOUTH.replace(hour=21, minute=30))
    sydney = make_specialist(timezone="Australia/Sydney", windows=every_day(8, 12))
    consult = make_consult(clinician, submit=False)
    [summer] = rank_specialists(consult)
    assert summer.user_id == sydney.id and summer.available_now

    clock.freeze(WINTER_SOUTH.replace(hour=21, minute=30))
    get_profile(sydney).licence_expires_on = WINTER_SOUTH.date() + timedelta(days=300)
    [winter] = rank_specialists(consult)
    assert winter.wait_minutes == 30  # the window opens at 08:00 local, 30 minutes away
    # Routine horizon is 24 h; emergencies give 15 minutes, too short to wait for her.
    consult.urgency = Urgency.EMERGENCY
    assert rank_specialists(consult) == []


def test_new_york_window_follows_daylight_saving(clinician, make_specialist, make_consult):
    new_york = make_specialist(timezone="America/New_York", windows=every_day(9, 17))
    consult = make_consult(clinician, submit=False, urgency=Urgency.EMERGENCY)
    clock.freeze(datetime(2026, 7, 1, 13, 30, tzinfo=UTC))  # 09:30 EDT
    assert [c.user_id for c in rank_specialists(consult)] == [new_york.id]
    clock.freeze(datetime(2026, 1, 7, 13, 30, tzinfo=UTC))  # 08:30 EST: 30 min > 15
    get_profile(new_york).licence_expires_on = datetime(2027, 1, 1).date()
    assert rank_specialists(consult) == []


def test_ranking_order_and_reasons(clinician, make_specialist, make_consult, make_user):
    clock.freeze(SUMMER_SOUTH.replace(hour=13, minute=5))  # 14:05 in Paris, 08:05 Montréal
    later = make_specialist(timezone="Asia/Tokyo", windows=every_day(23, 24), name="Later")
    busy = make_specialist(timezone="Europe/Paris", name="Busy")
    free = make_specialist(timezone="America/Montreal", name="Free", languages=("fr",))
    other_clinician = make_user(Role.CLINICIAN, clinic=clinician.clinic)
    taken = make_consult(other_clinician, urgency=Urgency.EMERGENCY)
    for specialist in (free, later):
        db.session.execute(db.update(Offer).where(Offer.specialist_id == specialist.id)
                           .values(status=OfferStatus.WITHDRAWN))
    db.session.execute(db.update(Consult).where(Consult.id == taken.id).values(
        status=ConsultStatus.ACCEPTED, specialist_id=busy.id, accepted_at=clock.now()))
    db.session.commit()

    consult = make_consult(clinician, submit=False, urgency=Urgency.ROUTINE,
                           languages=["fr"])
    ranked = rank_specialists(consult)
    assert [c.user_id for c in ranked] == [free.id, busy.id, later.id]
    assert ranked[0].reasons().startswith("available now, 8:05\u202fAM in Montreal; "
                                          "speaks French; 0 open consults")
    assert "1 open consult;" in ranked[1].reasons()
    assert ranked[2].reasons().startswith("available in 55 min (now 10:05\u202fPM in Tokyo)")


def test_stronger_language_and_faster_answers_break_ties(clinician, make_specialist,
                                                         make_consult):
    basic = make_specialist(name="Basic French", languages=("fr",))
    fluent = make_specialist(name="Fluent French", languages=("fr",))
    fast = make_specialist(name="Fast", languages=("fr",))
    db.session.execute(db.update(UserLanguage).where(UserLanguage.user_id == basic.id)
                       .values(level=1))
    get_profile(fast).response_minutes_avg = 5.0
    db.session.commit()
    consult = make_consult(clinician, submit=False, languages=["fr"])
    assert [c.user_id for c in rank_specialists(consult)] == [fast.id, fluent.id, basic.id]


def _suspend(user):
    get_profile(user).status = ProfileStatus.SUSPENDED


def _unverify(user):
    get_profile(user).credential_status = CredentialStatus.UNVERIFIED


def _expire(user):
    get_profile(user).licence_expires_on = clock.now().date() - timedelta(days=1)


def _leave(user):
    db.session.add(LeavePeriod(user_id=user.id, starts_at=clock.now() - timedelta(days=1),
                               ends_at=clock.now() + timedelta(days=1)))


def _full(user):
    get_profile(user).capacity = 0


def _deactivate(user):
    user.active = False


def _speaks_only_german(user):
    user.languages = [UserLanguage(language="de", level=3)]


@pytest.mark.parametrize("make_ineligible", [
    _suspend, _unverify, _expire, _leave, _full, _deactivate, _speaks_only_german,
])
def test_ineligible_specialists_are_never_offered(clinician, make_specialist, make_consult,
                                                  make_ineligible):
    specialist = make_specialist()
    make_ineligible(specialist)
    db.session.commit()
    consult = make_consult(clinician)
    assert _offered_to(consult) == set()
    assert consult.status == ConsultStatus.ESCALATED


def test_pending_and_unapproved_specialists_are_not_offered(clinician, make_user,
                                                            make_consult):
    make_user(Role.SPECIALIST, roster=False)  # no roster profile at all
    consult = make_consult(clinician)
    assert consult.status == ConsultStatus.ESCALATED


def test_other_specialty_is_not_offered(clinician, make_specialist, make_consult):
    make_specialist(specialties=("dermatology",))
    assert make_consult(clinician).status == ConsultStatus.ESCALATED
