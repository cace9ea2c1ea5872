"""A national network in the database, fast: specialists, clinics and two years of consults.

Rows go in through the models' tables (`insert(Model)`, many rows per statement), not through
the services: 100,000 consults with their notes and offers take a few minutes instead of
hours. Used by bench/http.py (1,000 and 100,000 consults) and by the list tests (5, 200 and a
few thousand rows). The shape is what a shared platform sees: most consults closed long ago,
the open ones recent, a few escalated, a busy volunteer with many cases, offers waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User, UserLanguage, user_specialties
from telehealth.clinics.models import Clinic
from telehealth.consults.models import Consult, ConsultMode, ConsultStatus, Outcome, Sex, Urgency
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from telehealth.notes.models import Note, NoteKind, NoteRevision
from telehealth.roster.models import (
    AvailabilityWindow,
    CredentialStatus,
    ProfileStatus,
    SpecialistProfile,
)

SPECIALTIES = 50
LANGUAGES = ["en", "fr", "es", "pt", "ar", "sw"]
ZONES = ["Africa/Nairobi", "Africa/Lagos", "Africa/Kinshasa", "Europe/Paris", "Europe/London",
         "America/New_York", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Manila",
         "Australia/Sydney", "America/Montreal", "Africa/Johannesburg"]
BATCH = 5_000
S = ConsultStatus
# Status by age: (status, weight). Old consults are closed; the open ones are recent.
OLD = [(S.CLOSED, 88), (S.CANCELLED, 8), (S.ANSWERED, 4)]
MONTH = [(S.CLOSED, 45), (S.ANSWERED, 25), (S.ACCEPTED, 18), (S.CANCELLED, 7),
         (S.ESCALATED, 5)]
WEEK = [(S.ACCEPTED, 35), (S.OFFERED, 25), (S.ANSWERED, 12), (S.ESCALATED, 8),
        (S.SUBMITTED, 5), (S.DRAFT, 8), (S.CANCELLED, 7)]


@dataclass
class Network:
    """Who to sign in as, and what was made."""

    admin_email: str = "admin@bench.example.org"
    coordinator_emails: list[str] = field(default_factory=list)
    clinician_emails: list[str] = field(default_factory=list)  # clinic 1 (the busiest) first
    specialist_emails: list[str] = field(default_factory=list)  # the busiest first
    consult_ids: list[int] = field(default_factory=list)  # a sample to open
    counts: dict[str, int] = field(default_factory=dict)


def _chunks(rows: list[dict[str, Any]]) -> Any:
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def _insert(model: Any, rows: list[dict[str, Any]]) -> None:
    for chunk in _chunks(rows):
        db.session.execute(insert(model), chunk)


def _pick(rnd: random.Random, weighted: list[tuple[ConsultStatus, int]]) -> ConsultStatus:
    return rnd.choices([s for s, _w in weighted], [w for _s, w in weighted])[0]


def fill_roster(specialists: int, clinics: int, password_hash: str, seed: int = 11,
                now: datetime | None = None) -> Network:
    """Specialties, clinics (two clinicians each), coordinators, an admin and the roster."""
    rnd = random.Random(seed)
    now = now or clock.now()
    net = Network()
    _insert(Specialty, [{"id": i, "code": f"spec{i:02d}", "stored_name": f"Specialty {i:02d}"}
                        for i in range(1, SPECIALTIES + 1)])
    _insert(Clinic, [{"id": i, "name": f"Clinic {i:03d}", "country": "CD",
                      "timezone": rnd.choice(ZONES),
                      "languages": ",".join(rnd.sample(LANGUAGES, 2)), "created_at": now}
                     for i in range(1, clinics + 1)])
    users: list[dict[str, Any]] = [{
        "id": 1, "email": net.admin_email, "name": "Admin", "role": Role.ADMIN}]
    for n in range(3):
        net.coordinator_emails.append(f"coordinator{n}@bench.example.org")
        users.append({"id": 2 + n, "email": net.coordinator_emails[-1],
                      "name": f"Coordinator {n}", "role": Role.COORDINATOR})
    next_id = 5
    for clinic in range(1, clinics + 1):
        for n in range(2):
            email = f"clinician{clinic}-{n}@bench.example.org"
            if clinic == 1:
                net.clinician_emails.append(email)
            users.append({"id": next_id, "email": email, "name": f"Clinician {clinic}-{n}",
                          "role": Role.CLINICIAN, "clinic_id": clinic})
            next_id += 1
    first_specialist = next_id
    names = ["Amina", "Bruno", "Chen", "Dalia", "Emeka", "Fatou", "Gabriel", "Hana", "Ivan",
             "Jamal", "Keza", "Luis", "Mei", "Nadia", "Omar", "Priya"]
    for n in range(specialists):
        uid = first_specialist + n
        net.specialist_emails.append(f"specialist{n}@bench.example.org")
        users.append({"id": uid, "email": net.specialist_emails[-1],
                      "name": f"{rnd.choice(names)} {n:05d}", "role": Role.SPECIALIST,
                      "timezone": rnd.choice(ZONES)})
    for row in users:
        row.setdefault("timezone", "UTC")
        row.update(password_hash=password_hash, created_at=now, session_token=f"t{row['id']}")
    _insert(User, users)
    spec_ids = range(first_specialist, first_specialist + specialists)
    _insert(user_specialties, [{"user_id": u, "specialty_id": s} for u in spec_ids
                               for s in rnd.sample(range(1, SPECIALTIES + 1), rnd.choice((1, 2)))])
    _insert(UserLanguage, [{"user_id": u, "language": lang, "level": rnd.randint(1, 3)}
                           for u in [*range(1, next_id), *spec_ids]
                           for lang in rnd.sample(LANGUAGES, rnd.randint(1, 2))])
    _insert(SpecialistProfile, [{
        "user_id": u, "status": ProfileStatus.ACTIVE if rnd.random() < 0.92
        else ProfileStatus.PENDING, "capacity": rnd.randint(2, 6),
        "licence_number": f"L{u}", "licence_expires_on": (now + timedelta(
            days=rnd.randint(-30, 900))).date(),
        "credential_status": CredentialStatus.VERIFIED, "created_at": now,
        "responses_count": 0} for u in spec_ids])
    _insert(AvailabilityWindow, [
        {"user_id": u, "weekday": d, "start_minute": 8 * 60, "end_minute": 12 * 60}
        for u in spec_ids for d in rnd.sample(range(7), 3)])
    net.counts.update(specialists=specialists, clinics=clinics, users=len(users))
    return net


def fill_consults(net: Network, consults: int, seed: int = 12, now: datetime | None = None,
                  busy_share: float = 0.02, years: float = 2.0,
                  busiest_waiting: int = 0, escalated: int = 0) -> None:
    """`consults` consults over `years`, with notes, revisions and offers.

    Clinic 1 and the first specialist are the busiest (`busy_share` of everything each), so
    their dashboards are the heaviest ones; everything else is spread evenly. The newest
    `busiest_waiting` consults wait for an answer to an offer made to the first specialist
    too: a volunteer's pending offers do not grow with the network, and a benchmark compares
    the same dashboard at two sizes. The `escalated` consults before them wait for a
    coordinator (at least that many: recent ones escalate anyway), so the escalation queue
    has full pages at any size too.
    """
    rnd = random.Random(seed)
    now = now or clock.now()
    first = db.session.scalar(select(func.min(User.id)).where(User.role == Role.SPECIALIST))
    last = db.session.scalar(select(func.max(User.id)).where(User.role == Role.SPECIALIST))
    clinics = db.session.scalar(select(func.count(Clinic.id))) or 1
    clinician_of = {c: 5 + 2 * (c - 1) for c in range(1, clinics + 1)}
    base = (db.session.scalar(select(func.max(Consult.id))) or 0) + 1
    span = timedelta(days=365 * years)
    # Oldest first: ids grow with time, as they do in a live database.
    ages = sorted((rnd.random() ** 1.0 * span for _n in range(consults)), reverse=True)
    rows, offers, notes, revisions = [], [], [], []
    note_id = (db.session.scalar(select(func.max(Note.id))) or 0) + 1
    for n, age in enumerate(ages):
        cid = base + n
        created = now - age
        status = _pick(rnd, WEEK if age < timedelta(days=7) else
                       MONTH if age < timedelta(days=30) else OLD)
        waiting_for_busiest = n >= consults - busiest_waiting
        if waiting_for_busiest:
            status = S.OFFERED
        elif n >= consults - busiest_waiting - escalated:
            status = S.ESCALATED
        clinic = 1 if rnd.random() < busy_share else rnd.randint(1, clinics)
        specialist = None
        if status in (S.ACCEPTED, S.ANSWERED, S.CLOSED):
            specialist = first if rnd.random() < busy_share else rnd.randint(first, last)
        accepted = created + timedelta(minutes=rnd.randint(5, 600)) if specialist else None
        answered = accepted + timedelta(hours=rnd.randint(1, 48)) \
            if accepted and status in (S.ANSWERED, S.CLOSED) else None
        closed = answered + timedelta(days=1) if answered and status == S.CLOSED else None
        updated = min(closed or answered or accepted or created, now)
        rows.append({
            "id": cid, "clinic_id": clinic, "created_by_id": clinician_of[clinic],
            "specialist_id": specialist, "status": status, "patient_ref": f"P-{cid}",
            "patient_age_years": rnd.randint(0, 90), "patient_sex": rnd.choice(list(Sex)),
            "presenting_problem": "Fever and cough for three days, no improvement on "
                                  "amoxicillin; oxygen saturation 93%.",
            "history": "", "question": "Which second-line antibiotic, and when to refer?",
            "specialty_id": rnd.randint(1, SPECIALTIES),
            "urgency": rnd.choices(list(Urgency), [70, 25, 5])[0],
            "mode": ConsultMode.WRITTEN, "languages": "fr,en",
            "outcome": Outcome.TREATED_LOCALLY if closed else None, "outcome_note": "",
            "rating": rnd.randint(3, 5) if closed else None,
            "created_at": created, "updated_at": updated,
            "submitted_at": None if status == S.DRAFT else created,
            "accepted_at": min(accepted, now) if accepted else None,
            "answered_at": min(answered, now) if answered else None,
            "closed_at": min(closed, now) if closed else None})
        if status != S.DRAFT:
            # The offers the cascade made: declined or expired ones, then the outcome.
            asked = rnd.sample(range(first, last + 1), min(2, last - first + 1))
            if specialist is not None and specialist not in asked:
                asked[-1] = specialist
            for who in asked:
                offer_status = (OfferStatus.ACCEPTED if who == specialist else
                                OfferStatus.PENDING if status == S.OFFERED else
                                rnd.choice((OfferStatus.DECLINED, OfferStatus.EXPIRED)))
                offers.append({"consult_id": cid, "specialist_id": who, "status": offer_status,
                               "created_at": created, "expires_at": created + timedelta(
                                   hours=24 if status != S.OFFERED else 24 * 30),
                               "responded_at": None if offer_status == OfferStatus.PENDING
                               else created + timedelta(minutes=30)})
            if status == S.OFFERED and (waiting_for_busiest or rnd.random() < busy_share * 10) \
                    and first not in asked:
                offers.append({"consult_id": cid, "specialist_id": first,
                               "status": OfferStatus.PENDING, "created_at": created,
                               "expires_at": now + timedelta(days=30), "responded_at": None})
        if specialist is not None:
            for k, (author, kind) in enumerate([(clinician_of[clinic], NoteKind.NOTE),
                                                (specialist, NoteKind.ANSWER)]):
                if kind == NoteKind.ANSWER and not answered:
                    continue
                at = created + timedelta(minutes=10 + k)
                notes.append({"id": note_id, "consult_id": cid, "author_id": author,
                              "kind": kind, "created_at": at, "language": "fr",
                              "language_detected": False})
                revisions.append({"note_id": note_id, "number": 1, "author_id": author,
                                  "created_at": at, "body": "Merci. Voici ce que je propose : "
                                  "reprendre la saturation, puis référer si < 92 %."})
                note_id += 1
        if len(rows) >= BATCH:
            _flush_consults(rows, offers, notes, revisions)
            rows, offers, notes, revisions = [], [], [], []
    _flush_consults(rows, offers, notes, revisions)
    net.consult_ids = list(db.session.scalars(
        select(Consult.id).where(Consult.clinic_id == 1).order_by(Consult.id.desc()).limit(20)))
    net.counts["consults"] = net.counts.get("consults", 0) + consults


def _flush_consults(*tables: list[dict[str, Any]]) -> None:
    for model, rows in zip((Consult, Offer, Note, NoteRevision), tables, strict=True):
        if rows:
            db.session.execute(insert(model), rows)


def reset_sequences() -> None:
    """After explicit ids on PostgreSQL: the next row the app adds gets a fresh id."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    for table in ("users", "clinics", "specialties", "consults", "offers", "notes",
                  "note_revisions", "user_languages", "specialist_profiles",
                  "availability_windows"):
        db.session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"))
