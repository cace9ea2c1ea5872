"""A seeded world with known answers for the situation room (see the figures in test_services).

The clock stands at Wednesday 25 November 2026, 12:00 UTC. Consults, offers and outcomes are
written directly with set timestamps (not through the matcher), so every figure is known.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User
from telehealth.clinics.models import Clinic
from telehealth.consults.models import Consult, ConsultMode, ConsultStatus, Outcome, Sex, Urgency
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from telehealth.roster.models import CredentialStatus, LeavePeriod
from tests.conftest import make_roster_entry

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def add_consult(clinic: Clinic, author: User, specialty: Specialty, urgency: Urgency,
                status: ConsultStatus, submitted: datetime, languages: str = "fr",
                accepted: float | None = None, answered: float | None = None,
                closed: float | None = None, specialist: User | None = None,
                offers: list[tuple[User, float, OfferStatus]] = (), **close: Any) -> Consult:
    """A consult submitted at `submitted`, other steps that many hours later."""
    def after(hours: float | None) -> datetime | None:
        return None if hours is None else submitted + timedelta(hours=hours)

    consult = Consult(
        clinic_id=clinic.id, created_by_id=author.id, specialist_id=getattr(specialist, "id", None),
        status=status, patient_ref="P", patient_age_years=30, patient_sex=Sex.FEMALE,
        presenting_problem="Problem.", question="Question?", specialty_id=specialty.id,
        urgency=urgency, mode=ConsultMode.WRITTEN, languages=languages,
        created_at=submitted, updated_at=submitted, submitted_at=submitted,
        accepted_at=after(accepted), answered_at=after(answered), closed_at=after(closed),
        **close)
    db.session.add(consult)
    db.session.flush()
    for person, hours, offer_status in offers:
        db.session.add(Offer(consult_id=consult.id, specialist_id=person.id, status=offer_status,
                             created_at=after(hours)))
    db.session.flush()
    return consult


@pytest.fixture()
def seeded(make_clinic: Callable[..., Clinic], make_user: Callable[..., User],
           make_specialty: Callable[..., Specialty]) -> dict[str, Any]:
    clock.freeze(NOW)
    cardio, derm, paed = (make_specialty(c) for c in ("cardiology", "dermatology",
                                                       "paediatrics"))
    goma = make_clinic("Goma", languages=("fr", "sw"))
    maputo = make_clinic("Maputo", languages=("pt",))
    make_clinic("Bukavu")  # never asked anything
    kindu = make_clinic("Kindu")
    doctor = make_user(Role.CLINICIAN, clinic=goma)
    medico = make_user(Role.CLINICIAN, clinic=maputo)
    kindu_doctor = make_user(Role.CLINICIAN, clinic=kindu)

    def volunteer(name: str, specialty: str, languages: tuple[str, ...],
                  windows: list[tuple[int, int, int]] | None = None,
                  timezone: str = "UTC") -> User:
        user = make_user(Role.SPECIALIST, specialties=(specialty,), languages=languages,
                         name=name, roster=False, timezone=timezone)
        make_roster_entry(user, windows)
        db.session.commit()
        return user

    ana = volunteer("Ana", "cardiology", ("fr",))  # all week: eligible now
    # Thursday 09:00-10:00 in Paris = 08:00 UTC: in 20 hours.
    ben = volunteer("Ben", "cardiology", ("fr", "en"), [(3, 540, 600)], "Europe/Paris")
    chloe = volunteer("Chloé", "cardiology", ("pt",))
    db.session.add(LeavePeriod(user_id=chloe.id, starts_at=NOW - D, ends_at=NOW + 7 * D))
    dan = volunteer("Dan", "dermatology", ("pt",))
    dan_profile = profile_of(dan)
    dan_profile.credential_status = CredentialStatus.UNVERIFIED
    # Saturday 10:00-12:00 UTC: in 70 hours. Licence runs out in 10 days.
    eve = volunteer("Eve", "paediatrics", ("sw",), [(5, 600, 720)])
    profile_of(eve).licence_expires_on = (NOW + 10 * D).date()
    db.session.flush()

    U, R, E = Urgency.URGENT, Urgency.ROUTINE, Urgency.EMERGENCY
    S = ConsultStatus
    A, DE, X, P, W = (OfferStatus.ACCEPTED, OfferStatus.DECLINED, OfferStatus.EXPIRED,
                      OfferStatus.PENDING, OfferStatus.WITHDRAWN)
    # Answered and closed (speed, cascade, outcomes).
    add_consult(goma, doctor, cardio, U, S.CLOSED, NOW - 10 * D, accepted=1, answered=4,
                closed=48, specialist=ana, offers=[(ana, 0.5, A)],
                outcome=Outcome.TREATED_LOCALLY, rating=5, referral_avoided=True,
                course_changed=True)
    add_consult(goma, doctor, cardio, U, S.CLOSED, NOW - 9 * D, accepted=2, answered=6,
                closed=24, specialist=ana, offers=[(ben, 1, DE), (ana, 1.5, A)],
                outcome=Outcome.TREATED_LOCALLY, rating=3, referral_avoided=False)
    add_consult(goma, doctor, cardio, U, S.ANSWERED, NOW - 8 * D, accepted=3, answered=20,
                specialist=ana, offers=[(ana, 1.5, A)])
    add_consult(goma, doctor, cardio, U, S.CLOSED, NOW - 3 * D, accepted=5, answered=10,
                closed=30, specialist=ana,
                offers=[(ben, 0.25, X), (chloe, 2, DE), (ana, 4, A)], outcome=Outcome.REFERRED)
    add_consult(maputo, medico, derm, R, S.CLOSED, NOW - 20 * D, languages="pt", accepted=30,
                answered=50, closed=100, specialist=dan, offers=[(dan, 2, A)],
                outcome=Outcome.TREATED_LOCALLY, rating=4, referral_avoided=True,
                course_changed=False)
    add_consult(goma, doctor, paed, E, S.ANSWERED, NOW - 2 * D, languages="sw", accepted=0.5,
                answered=2, specialist=eve, offers=[(eve, 0.1, A), (ana, 0.1, W), (ben, 0.1, W)])
    # Waiting for a specialist (demand).
    add_consult(goma, doctor, cardio, U, S.SUBMITTED, NOW - H, languages="fr,en")
    add_consult(maputo, medico, cardio, U, S.ESCALATED, NOW - 5 * H, languages="pt",
                offers=[(chloe, 0.5, X)])
    add_consult(maputo, medico, derm, R, S.OFFERED, NOW - 2 * H, languages="pt",
                offers=[(dan, 0.2, P)])
    add_consult(goma, doctor, paed, R, S.SUBMITTED, NOW - 0.5 * H, languages="sw")
    add_consult(goma, doctor, derm, R, S.SUBMITTED, NOW - H / 3, languages="ar")
    # Long ago, outside every period: Kindu is silent since.
    add_consult(kindu, kindu_doctor, cardio, R, S.CANCELLED, NOW - 200 * D)
    db.session.commit()
    return {"ana": ana, "ben": ben, "chloe": chloe, "dan": dan, "eve": eve, "goma": goma,
            "maputo": maputo, "cardio": cardio}


def profile_of(user: User) -> Any:
    from telehealth.roster.models import SpecialistProfile

    return db.session.query(SpecialistProfile).filter_by(user_id=user.id).one()
