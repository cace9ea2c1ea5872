"""A writer stopped in the middle of its commit (SIGSTOP) holds the audit chain's lock until
its connection dies: every other save waits a few seconds at most, then answers 503 "try
again" with nothing of it kept, and goes through once the lock is free."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from telehealth.audit.chain import ADVISORY_LOCK_KEY, verify_chain
from telehealth.audit.models import AuditEvent
from telehealth.extensions import db
from telehealth.notes.models import Note
from tests.audit.conftest import is_postgres
from tests.conftest import PASSWORD

TIMEOUT = 1
BODY = "Fever down since the morning."


@contextmanager
def chain_held_elsewhere() -> Iterator[None]:
    """Another connection holds the chain's lock inside an open transaction, as a stopped
    process's would, until the block ends."""
    held, release = threading.Event(), threading.Event()
    engine = db.engine

    def hold() -> None:
        with engine.connect() as connection, connection.begin():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": ADVISORY_LOCK_KEY})
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def notes_saved(consult_id: int) -> int:
    db.session.rollback()  # a fresh look at what the requests committed
    return db.session.scalar(select(func.count(Note.id)).where(Note.consult_id == consult_id))


@pytest.mark.postgres
def test_a_save_behind_a_stalled_writer_is_a_clear_503_then_goes_through(
        app: Flask, client: Any, build_case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_postgres():
        pytest.skip("the chain's advisory lock is PostgreSQL's (SQLite: its busy timeout)")
    monkeypatch.setitem(app.config, "DATABASE_LOCK_TIMEOUT_SECONDS", TIMEOUT)
    objects = build_case("accepted")
    consult_id, clinician = objects["consult"].id, objects["clinician"]
    email = clinician.email
    db.session.commit()
    with chain_held_elsewhere():
        # Signing in records an entry: it waits behind the lock like any other save.
        started = time.monotonic()
        response = client.post("/login", data={"email": email, "password": PASSWORD})
        assert response.status_code == 503
        assert time.monotonic() - started < TIMEOUT + 3
        assert "busy saving other changes" in response.text
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code \
        in (302, 303)
    entries = db.session.scalar(select(func.count(AuditEvent.id)))
    notes = notes_saved(consult_id)
    with chain_held_elsewhere():
        started = time.monotonic()
        page = client.post(f"/consults/{consult_id}/notes", data={"body": BODY})
        assert time.monotonic() - started < TIMEOUT + 3
        assert page.status_code == 503
        assert "busy saving other changes" in page.text and "try again" in page.text
        api = client.get(f"/api/consults/{consult_id}")
        assert api.status_code == 503
        assert "try again" in api.get_json()["error"]
        # Nothing half-saved: neither the note nor any audit entry.
        assert notes_saved(consult_id) == notes
        assert db.session.scalar(select(func.count(AuditEvent.id))) == entries
    page = client.post(f"/consults/{consult_id}/notes", data={"body": BODY})
    assert page.status_code in (200, 302, 303)
    assert notes_saved(consult_id) == notes + 1
    assert client.get(f"/api/consults/{consult_id}").status_code == 200
    report = verify_chain(db.session())
    assert report.intact, report.problems
