"""Shared fixtures: an app on SQLite (or PostgreSQL when configured), factories, sign-in."""

from __future__ import annotations

import contextvars
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Before telehealth is imported: keep the test run's secret key and instance files apart.
_INSTANCE = tempfile.mkdtemp(prefix="telehealth-test-")
os.environ.setdefault("TELEHEALTH_INSTANCE_DIR", _INSTANCE)
os.environ.setdefault("TELEHEALTH_SECRET_KEY", "test-secret-key")

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from telehealth import clock, create_app  # noqa: E402
from telehealth.accounts.models import Role, Specialty, User  # noqa: E402
from telehealth.accounts.services import create_user  # noqa: E402
from telehealth.clinics.models import Clinic  # noqa: E402
from telehealth.clinics.services import create_clinic  # noqa: E402
from telehealth.consults.models import ConsultMode, Sex, Urgency  # noqa: E402
from telehealth.consults.services import ConsultInput, Upload, create_consult  # noqa: E402
from telehealth.extensions import db  # noqa: E402

IN_CI = os.environ.get("CI") == "true"
TEST_DATABASE_URL = os.environ.get("TELEHEALTH_TEST_DATABASE_URL")
PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def need_service(name: str, reason: str) -> None:
    """Skip on a laptop without the service; in CI a missing service is a failure."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def reset_postgres(url: str) -> None:
    """Empty the test database: every run starts from migrations on a blank schema."""
    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "unreachable"
        need_service("PostgreSQL", f"{url}: {exc}")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        reset_postgres(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


class IsolatedClient(FlaskClient):
    """A test client whose requests run in their own contexts, as on a real server.

    Tests keep an app context pushed for their own database work; without this, Flask would
    reuse it for each request and share `g` (the signed-in user, the locale) and the
    database session between requests and between clients.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = contextvars.Context().run(super().open, *args, **kwargs)
        # What the test loaded before may have changed: read it afresh next time.
        db.session.expire_all()
        return response


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One application for the session, its schema built by the migrations."""
    from flask_migrate import upgrade

    app = create_app({
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_DIR": str(tmp_path_factory.mktemp("uploads")),
        "WTF_CSRF_ENABLED": False,
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
        "SERVER_NAME": None,
    })
    app.test_client_class = IsolatedClient
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _compiled_catalogs() -> None:
    """Compile translations/*.po to .mo first, as `make translations` does (.mo is not kept)."""
    from telehealth.i18n.catalogs import compile_catalogs

    compile_catalogs()


def _empty_tables() -> None:
    """Empty every table. A server thread of the test may still be finishing a write (a call
    participant leaving in the background, say): on a lock conflict, try again."""
    from sqlalchemy.exc import OperationalError

    tables = [t for t in reversed(db.metadata.sorted_tables)]
    for attempt in range(5):
        try:
            if db.engine.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    db.session.execute(table.delete())
            db.session.commit()
            return
        except OperationalError:
            db.session.rollback()
            if attempt == 4:
                raise
            time.sleep(0.5)


@pytest.fixture(autouse=True)
def _app_context(app: Flask, tmp_path: Path) -> Iterator[None]:
    """Each test runs in an app context, with its own upload folder, and empties every table."""
    app.config["UPLOAD_DIR"] = str(tmp_path / "uploads")
    with app.app_context():
        yield
        db.session.rollback()
        clock.freeze(None)
        _empty_tables()
        db.session.remove()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ---------------------------------------------------------------- factories


@pytest.fixture()
def make_specialty() -> Callable[..., Specialty]:
    def make(code: str = "cardiology", name: str | None = None) -> Specialty:
        specialty = db.session.query(Specialty).filter_by(code=code).one_or_none()
        if specialty is None:
            specialty = Specialty(code=code, name=name or code.title())
            db.session.add(specialty)
            db.session.commit()
        return specialty

    return make


@pytest.fixture()
def make_clinic() -> Callable[..., Clinic]:
    counter = iter(range(1, 10_000))

    def make(name: str | None = None, languages: tuple[str, ...] = ("fr", "en"),
             **kwargs: Any) -> Clinic:
        clinic = create_clinic(name=name or f"Clinic {next(counter)}",
                               country=kwargs.pop("country", "CD"),
                               languages=list(languages), **kwargs)
        db.session.commit()
        return clinic

    return make


@pytest.fixture()
def make_user(make_specialty: Callable[..., Specialty]) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(role: Role = Role.CLINICIAN, clinic: Clinic | None = None,
             specialties: tuple[str, ...] = ("cardiology",), languages: tuple[str, ...] = ("en",
                                                                                        "fr"),
             email: str | None = None, roster: bool = True, **kwargs: Any) -> User:
        """roster=False: a specialist account without an approved roster profile."""
        n = next(counter)
        user = create_user(
            email=email or f"{role.value}{n}@example.org",
            name=kwargs.pop("name", f"{role.value.title()} {n}"),
            password=PASSWORD,
            role=role,
            clinic=clinic,
            specialties=[make_specialty(c) for c in specialties] if role == Role.SPECIALIST
            else [],
            languages={code: 3 for code in languages},
            **kwargs,
        )
        if role == Role.SPECIALIST and roster:
            make_roster_entry(user)
        db.session.commit()
        return user

    return make


def make_roster_entry(user: User, windows: list[tuple[int, int, int]] | None = None,
                      capacity: int = 3) -> Any:
    """An approved profile, a verified licence valid for a year, available all week."""
    from datetime import timedelta

    from telehealth.roster.models import (
        AvailabilityWindow,
        CredentialStatus,
        ProfileStatus,
        SpecialistProfile,
    )

    profile = SpecialistProfile(
        user_id=user.id, status=ProfileStatus.ACTIVE, capacity=capacity,
        licence_number=f"L-{user.id}", licence_body="Medical Council", licence_country="FR",
        licence_expires_on=(clock.now() + timedelta(days=365)).date(),
        credential_status=CredentialStatus.VERIFIED, verified_at=clock.now(),
    )
    db.session.add(profile)
    for weekday, start, end in windows if windows is not None else [
            (d, 0, 1440) for d in range(7)]:
        db.session.add(AvailabilityWindow(user_id=user.id, weekday=weekday, start_minute=start,
                                          end_minute=end))
    db.session.flush()
    return profile


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), exif: bytes | None = None
                ) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 30))
    if exif is not None:
        image.save(out, format=fmt, exif=exif)
    else:
        image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture()
def make_consult(make_specialty: Callable[..., Specialty]) -> Callable[..., Any]:
    def make(clinician: User, *, submit: bool = True, specialty: str = "cardiology",
             files: list[tuple[str, bytes]] | None = None, **overrides: Any) -> Any:
        data = ConsultInput(
            patient_ref=overrides.pop("patient_ref", "P-001"),
            patient_age_years=overrides.pop("patient_age_years", 34),
            patient_age_band=None,
            patient_sex=overrides.pop("patient_sex", Sex.FEMALE),
            presenting_problem=overrides.pop("presenting_problem", "Chest pain for two days."),
            history=overrides.pop("history", ""),
            question=overrides.pop("question", "Is this cardiac?"),
            specialty=make_specialty(specialty),
            urgency=overrides.pop("urgency", Urgency.URGENT),
            mode=overrides.pop("mode", ConsultMode.WRITTEN),
            languages=overrides.pop("languages", ["fr", "en"]),
        )
        uploads = [Upload(io.BytesIO(content), name) for name, content in files or []]
        consult = create_consult(clinician, data, uploads, submit=submit)
        db.session.commit()
        return consult

    return make


class Auth:
    """Sign a test client in and out."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, user_or_email: User | str, password: str = PASSWORD) -> Any:
        email = user_or_email if isinstance(user_or_email, str) else user_or_email.email
        return self.client.post("/login", data={"email": email, "password": password})

    def logout(self) -> Any:
        return self.client.post("/logout")


@pytest.fixture()
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


@pytest.fixture()
def world(make_clinic: Callable[..., Clinic], make_user: Callable[..., User]) -> dict[str, Any]:
    """Two clinics, a clinician in each, two cardiologists, a coordinator and an admin."""
    clinic = make_clinic("Goma")
    other_clinic = make_clinic("Maputo", languages=("pt",))
    return {
        "clinic": clinic,
        "other_clinic": other_clinic,
        "clinician": make_user(Role.CLINICIAN, clinic=clinic),
        "other_clinician": make_user(Role.CLINICIAN, clinic=other_clinic),
        "specialist": make_user(Role.SPECIALIST),
        "other_specialist": make_user(Role.SPECIALIST, specialties=("dermatology",)),
        "coordinator": make_user(Role.COORDINATOR),
        "admin": make_user(Role.ADMIN),
    }


# ---------------------------------------------------------------- live server and browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="session")
def _live_server(app: Flask) -> Iterator[str]:
    """The app served by a real HTTP server on a free loopback port; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture()
def live_server(_live_server: str) -> str:
    """The live server's base URL, with Socket.IO talking to real clients again.

    Flask-SocketIO's test client patches the shared Socket.IO server so that packets go to
    test queues; a real browser would then never hear back.
    """
    from telehealth.extensions import socketio

    sio_server = socketio.server
    for name in ("_send_packet", "_send_eio_packet"):
        sio_server.__dict__.pop(name, None)
    # As create_app sets it: one socket's events in order, in its own connection thread.
    sio_server.async_handlers = sio_server.eio.async_handlers = False
    return _live_server


@pytest.fixture()
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser).

    One per test: Playwright's sync API keeps an event loop running in this thread while it
    is open, and the video tests need to run their own asyncio loops afterwards.
    """
    if not os.path.exists(CHROMIUM):
        need_service("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        need_service("Playwright", str(exc))
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def sign_in(page: Any, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form in a browser page (the header's language switcher has a
    button too, hence `main #submit`) and wait for the dashboard."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("main #submit")
    # Home is the dashboard, or the role's own room (a surveillance officer's is /surveillance).
    page.wait_for_url(lambda url: url in (f"{base_url}/", f"{base_url}/surveillance"))


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ (named in the README)."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def take_consult(consult: Any, specialist: User) -> None:
    """Let this specialist take the consult, with an offer of their own if the matcher
    chose somebody else first (the cascade offers urgent cases to one person at a time)."""
    from telehealth.matching.models import Offer, OfferStatus
    from telehealth.matching.services import accept_consult, has_pending_offer

    if not has_pending_offer(consult, specialist):
        db.session.add(Offer(consult_id=consult.id, specialist_id=specialist.id,
                             status=OfferStatus.PENDING))
        db.session.flush()
    accept_consult(consult, specialist)


def another_app(config: dict[str, Any]) -> Flask:
    """A second application (say, on another database) beside the session's.

    create_app binds the shared Socket.IO object to a new server; the session app's server
    is put back, or its tests would emit into the other app's server.
    """
    from telehealth.extensions import socketio

    saved_server = socketio.server
    try:
        return create_app(config)
    finally:
        socketio.server = saved_server
