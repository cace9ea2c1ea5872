"""Command-line tools: `flask --app wsgi seed-demo`."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask
from flask_babel import force_locale
from sqlalchemy import func, select

from telehealth import clock
from telehealth.accounts.models import SPECIALTY_NAMES, Role, Specialty, User
from telehealth.accounts.services import create_user
from telehealth.boundary import unit_of_work
from telehealth.clinics.services import create_clinic
from telehealth.consults.models import ConsultMode, Outcome, Sex, Urgency
from telehealth.extensions import db
from telehealth.roster.models import (
    AvailabilityWindow,
    CredentialStatus,
    ProfileStatus,
    SpecialistProfile,
)

CLINICS = [
    ("Centre de santé Goma", "CD", "Goma", "Africa/Lubumbashi", ["fr", "sw"]),
    ("Hospital Rural de Chókwè", "MZ", "Chókwè", "Africa/Maputo", ["pt"]),
    ("Gulu Community Health Centre", "UG", "Gulu", "Africa/Kampala", ["en", "sw"]),
    ("Dispensaire de Tripoli", "LB", "Tripoli", "Asia/Beirut", ["ar", "fr", "en"]),
    ("Centro de Salud Huancayo", "PE", "Huancayo", "America/Lima", ["es"]),
]

# (e-mail, name, time zone, interface language, specialties, languages with level)
SPECIALISTS = [
    ("claire.martin@example.org", "Dr Claire Martin", "Europe/Paris", "fr",
     ["cardiology", "internal"], {"fr": 3, "en": 3}),
    ("luc.tremblay@example.org", "Dr Luc Tremblay", "America/Montreal", "fr",
     ["paediatrics"], {"fr": 3, "en": 3}),
    ("amina.okafor@example.org", "Dr Amina Okafor", "America/Toronto", "en",
     ["dermatology", "infectious"], {"en": 3, "fr": 2}),
    ("james.wu@example.org", "Dr James Wu", "Australia/Sydney", "en",
     ["radiology"], {"en": 3}),
    ("yuki.tanaka@example.org", "Dr Yuki Tanaka", "Asia/Tokyo", "en",
     ["neurology", "internal"], {"en": 2}),
    ("ana.souza@example.org", "Dra Ana Souza", "America/Sao_Paulo", "pt",
     ["obstetrics", "paediatrics"], {"pt": 3, "es": 2, "en": 2}),
    ("javier.ruiz@example.org", "Dr Javier Ruiz", "Europe/Madrid", "es",
     ["surgery", "orthopaedics", "emergency"], {"es": 3, "en": 2, "fr": 1}),
    ("sarah.jones@example.org", "Dr Sarah Jones", "Europe/London", "en",
     ["cardiology", "emergency"], {"en": 3}),
    ("wanjiru.kamau@example.org", "Dr Wanjiru Kamau", "Africa/Nairobi", "sw",
     ["infectious", "internal", "paediatrics"], {"sw": 3, "en": 3}),
    ("omar.haddad@example.org", "Dr Omar Haddad", "Africa/Cairo", "ar",
     ["psychiatry", "neurology"], {"ar": 3, "en": 3, "fr": 2}),
    ("emily.clark@example.org", "Dr Emily Clark", "America/New_York", "en",
     ["dermatology", "radiology"], {"en": 3, "es": 1}),
    ("joao.pereira@example.org", "Dr João Pereira", "Europe/Lisbon", "pt",
     ["orthopaedics", "surgery", "cardiology"], {"pt": 3, "fr": 2, "en": 2}),
]

CLINICIANS = [
    ("marie.kabila@example.org", "Marie Kabila", 0, "fr", {"fr": 3, "sw": 3}),
    ("jose.machava@example.org", "José Machava", 1, "pt", {"pt": 3}),
    ("grace.akello@example.org", "Grace Akello", 2, "en", {"en": 3, "sw": 2}),
    ("layla.khoury@example.org", "Layla Khoury", 3, "ar", {"ar": 3, "fr": 3, "en": 2}),
    ("rosa.quispe@example.org", "Rosa Quispe", 4, "es", {"es": 3}),
]

DEMO_PASSWORD = "telehealth-demo"


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo world; return (role, e-mail, name) for every account."""
    specialties = {}
    for code, label in SPECIALTY_NAMES.items():
        specialty = db.session.scalar(select(Specialty).where(Specialty.code == code))
        if specialty is None:
            with force_locale("en"):  # stored in English; pages show the reader's language
                specialty = Specialty(code=code, name=str(label))
            db.session.add(specialty)
        specialties[code] = specialty
    db.session.flush()
    clinics = [
        create_clinic(name=n, country=c, city=city, timezone=tz, languages=langs)
        for n, c, city, tz, langs in CLINICS
    ]
    people: list[User] = []
    for email, name, clinic_index, locale, langs in CLINICIANS:
        clinic = clinics[clinic_index]
        people.append(create_user(email=email, name=name, password=DEMO_PASSWORD,
                                  role=Role.CLINICIAN, clinic=clinic, timezone=clinic.timezone,
                                  locale=locale, languages=langs))
    for email, name, tz, locale, codes, langs in SPECIALISTS:
        people.append(create_user(email=email, name=name, password=DEMO_PASSWORD,
                                  role=Role.SPECIALIST, timezone=tz, locale=locale,
                                  specialties=[specialties[c] for c in codes], languages=langs))
    people.append(create_user(email="coordinator@example.org", name="Nadia Coordinator",
                              password=DEMO_PASSWORD, role=Role.COORDINATOR,
                              timezone="Europe/Zurich", locale="en",
                              languages={"en": 3, "fr": 3}))
    coordinator = people[-1]
    people.append(create_user(email="admin@example.org", name="Alex Admin",
                              password=DEMO_PASSWORD, role=Role.ADMIN, timezone="UTC",
                              locale="en", languages={"en": 3}))
    for person in people:
        if person.role == Role.SPECIALIST:
            _approve_demo_specialist(person, coordinator)
    from telehealth.surveillance.demo import seed_surveillance

    people.extend(seed_surveillance(clinics, DEMO_PASSWORD))
    return [(p.role.value, p.email, p.name) for p in people]


def _approve_demo_specialist(user: User, coordinator: User) -> None:
    """Put a demo volunteer on the roster as a coordinator would: approved, licence verified,
    available every day from 07:00 to 22:00 in their own time zone."""
    now = clock.now()
    db.session.add(SpecialistProfile(
        user_id=user.id, status=ProfileStatus.ACTIVE, capacity=3, approved_at=now,
        licence_number=f"DEMO-{user.id:04d}", licence_body="Demo medical council",
        licence_country="FR", licence_expires_on=(now + timedelta(days=365)).date(),
        credential_status=CredentialStatus.VERIFIED, verified_by_id=coordinator.id,
        verified_at=now,
    ))
    db.session.add_all(
        AvailabilityWindow(user_id=user.id, weekday=day, start_minute=7 * 60,
                           end_minute=22 * 60)
        for day in range(7)
    )
    db.session.flush()


# (clinician, patient, specialty, urgency, mode, languages, presenting problem, history,
#  question, age, sex, what happens next, the specialist who takes it, their notes)
# Each account has a case to open, at each step of a consult's life: a draft, one waiting for
# a volunteer, one taken (on video), one answered with the clinic's reply, one closed.
DEMO_CONSULTS = [
    ("marie.kabila@example.org", "GOMA-0042", "cardiology", Urgency.URGENT, ConsultMode.WRITTEN,
     ["fr"], "Douleur thoracique depuis deux jours, essoufflement à l'effort.",
     "Hypertension connue depuis trois ans, traitée irrégulièrement.",
     "Faut-il le transférer à Goma-ville, ou peut-on le traiter ici ?", 58, Sex.MALE,
     "closed", "claire.martin@example.org",
     ["ECG si possible ; aspirine 300 mg en attendant. Si la douleur dure plus de 20 minutes "
      "au repos, transférez-le."]),
    ("marie.kabila@example.org", "GOMA-0057", "paediatrics", Urgency.ROUTINE,
     ConsultMode.WRITTEN, ["fr", "sw"], "Enfant de 4 ans, fièvre intermittente depuis 10 jours.",
     "Test rapide du paludisme négatif deux fois.", "Quels examens demander ?", 4, Sex.FEMALE,
     "waiting", None, []),
    ("grace.akello@example.org", "GULU-0117", "infectious", Urgency.URGENT, ConsultMode.VIDEO,
     ["en", "sw"], "Fever and a spreading rash after travel across the border.",
     "No known contact with a sick person.", "Could this be mpox? What precautions now?", 27,
     Sex.MALE, "taken", "wanjiru.kamau@example.org",
     ["Isolate him and keep the lesions covered. Can we look at the rash on video today?"]),
    ("layla.khoury@example.org", "TRP-0009", "psychiatry", Urgency.ROUTINE, ConsultMode.WRITTEN,
     ["ar", "fr"], "أرق شديد وفقدان الشهية منذ شهرين.", "لا سوابق نفسية معروفة.",
     "ما العلاج المناسب في مركز صحي بلا طبيب نفسي؟", 41, Sex.FEMALE,
     "answered", "omar.haddad@example.org",
     ["يرجى تقييم الاكتئاب أولاً بمقياس PHQ-9، وسأقترح العلاج حسب النتيجة."]),
    ("jose.machava@example.org", "CHK-0031", "obstetrics", Urgency.URGENT, ConsultMode.WRITTEN,
     ["pt"], "Gestante de 32 semanas com tensão arterial 160/110.", "Primeira gravidez.",
     "Sulfato de magnésio antes da transferência?", 23, Sex.FEMALE, "waiting", None, []),
    ("rosa.quispe@example.org", "HYO-0003", "dermatology", Urgency.ROUTINE, ConsultMode.WRITTEN,
     ["es"], "Lesión cutánea crónica en la pierna, indolora.", "Trabaja en la selva.",
     "¿Leishmaniasis? ¿Qué tratamiento?", 35, Sex.MALE, "draft", None, []),
]


def seed_demo_consults() -> int:
    """Make the demo's consults through the same services a clinic and a volunteer use."""
    from telehealth.consults.services import ConsultInput, close_consult, create_consult
    from telehealth.matching.models import Offer, OfferStatus
    from telehealth.matching.services import accept_consult, assign_consult
    from telehealth.notes.services import add_note

    def person(email: str) -> User:
        return db.session.execute(select(User).where(User.email == email)).scalar_one()

    coordinator = person("coordinator@example.org")
    for (author_email, ref, code, urgency, mode, languages, problem, history, question, age,
         sex, step, specialist_email, notes) in DEMO_CONSULTS:
        author = person(author_email)
        specialty = db.session.execute(
            select(Specialty).where(Specialty.code == code)).scalar_one()
        consult = create_consult(author, ConsultInput(
            patient_ref=ref, patient_age_years=age, patient_age_band=None, patient_sex=sex,
            presenting_problem=problem, history=history, question=question,
            specialty=specialty, urgency=urgency, mode=mode, languages=languages),
            [], submit=step != "draft")
        if specialist_email is None:
            continue  # a draft, or waiting for whoever matching offered it to
        specialist = person(specialist_email)
        offered = db.session.scalar(select(Offer.id).where(
            Offer.consult_id == consult.id, Offer.specialist_id == specialist.id,
            Offer.status == OfferStatus.PENDING))
        if offered is not None:
            accept_consult(consult, specialist)
        else:  # seeded at night in their zone: the coordinator gives it by hand
            assign_consult(consult, specialist, coordinator, note="Demo")
        for body in notes:
            add_note(consult, specialist, body, answer=step in ("answered", "closed"))
        if step == "answered":
            add_note(consult, author, "شكراً، سأقيّمها اليوم وأعود إليكم بالنتيجة.")
        if step == "closed":
            close_consult(consult, author, Outcome.TREATED_LOCALLY,
                          "Douleur disparue en 48 h ; suivi à la consultation.", 5,
                          referral_avoided=True, course_changed=True)
    _seed_demo_weekly_reports()
    db.session.flush()
    return len(DEMO_CONSULTS)


# Goma's last eight weekly reports (acute watery diarrhoea, measles-like rash), the last one
# with a cluster of rash cases: the surveillance officers open an alert, not an empty page.
DEMO_WEEKLY_COUNTS = {"awd": [4, 6, 3, 5, 4, 6, 5, 4], "measles_rash": [0, 0, 1, 0, 0, 0, 0, 5]}


def _seed_demo_weekly_reports() -> None:
    from telehealth.surveillance import services as surveillance

    marie = db.session.execute(
        select(User).where(User.email == "marie.kabila@example.org")).scalar_one()
    assert marie.clinic is not None
    system = surveillance.week_system()
    this_week = surveillance.week_start(clock.now().date(), system)
    syndromes = surveillance.active_syndromes()
    weeks = len(next(iter(DEMO_WEEKLY_COUNTS.values())))
    for back in range(weeks, 0, -1):
        start = this_week - timedelta(weeks=back)
        counts = {s.id: str(DEMO_WEEKLY_COUNTS.get(s.code, [0] * weeks)[weeks - back])
                  for s in syndromes}
        surveillance.submit_weekly_report(marie.clinic, marie,
                                          surveillance.week_label(start, system), counts)
    db.session.flush()
    surveillance.run_detection()  # as the hourly job would: the rash cluster is an alert


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when users already exist.")
def seed_demo_command(if_empty: bool) -> None:
    """Create demo clinics, specialists, a coordinator, an admin and a few consults."""
    if db.session.scalar(select(func.count(User.id))):
        if if_empty:
            click.echo("Demo data: the database already has users; nothing added.")
            return
        raise click.ClickException("the database already has users; seed an empty one")
    with unit_of_work():
        accounts = seed_demo()
        consults = seed_demo_consults()
    click.echo(f"Demo sign-ins (password for all: {DEMO_PASSWORD}):")
    width = max(len(role) for role, _email, _name in accounts)
    for role, email, name in accounts:
        click.echo(f"  {role:<{width}} {email:<32} {name}")
    click.echo(f"Demo consults: {consults} (a draft, waiting, taken, answered, closed); "
               "Goma's weekly reports of the last 8 weeks, with an alert.")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(seed_demo_command)
