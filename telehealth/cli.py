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


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when users already exist.")
def seed_demo_command(if_empty: bool) -> None:
    """Create demo clinics, specialists, a coordinator and an admin."""
    if db.session.scalar(select(func.count(User.id))):
        if if_empty:
            click.echo("Demo data: the database already has users; nothing added.")
            return
        raise click.ClickException("the database already has users; seed an empty one")
    with unit_of_work():
        accounts = seed_demo()
    click.echo(f"Demo sign-ins (password for all: {DEMO_PASSWORD}):")
    for role, email, name in accounts:
        click.echo(f"  {role:<12} {email:<32} {name}")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(seed_demo_command)
