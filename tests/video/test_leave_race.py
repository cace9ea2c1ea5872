"""Two participants leaving a call at the same instant, on PostgreSQL: no deadlock, ever.

Each leave does what the hub does (note the leave; end the call when the engine says it
emptied) in its own thread and connection. The worst case is both ending the call: the
engine can report an empty room to both when one of them had already dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from telehealth.extensions import db
from telehealth.video import services
from telehealth.video.models import VideoParticipation, VideoSession
from tests.conftest import another_app, need_service

pytestmark = pytest.mark.postgres
ROUNDS = 50


@pytest.fixture(scope="module")
def race_app(app: Flask) -> Iterator[Flask]:
    """A second app on the session's PostgreSQL database (a connection per thread)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if not str(url).startswith("postgresql"):
        need_service("PostgreSQL", "set TELEHEALTH_TEST_DATABASE_URL to a PostgreSQL database")
    other = another_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                         "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024,
                         "SWEEPER_INTERVAL_SECONDS": 0})
    yield other
    with other.app_context():
        db.engine.dispose()


def test_two_participants_leaving_at_once_never_deadlock(
        race_app: Flask, call_consult: Any, world: dict[str, Any]) -> None:
    callers = [services.Caller(call_consult.id, f"u{user.id}", user.name, user_id=user.id)
               for user in (world["clinician"], world["specialist"])]
    for round_ in range(ROUNDS):
        for caller in callers:
            services.record_join(caller, "low")
        db.session.commit()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def leave(caller: services.Caller, ends: bool, barrier: threading.Barrier = barrier,
                  errors: list[BaseException] = errors) -> None:
            with race_app.app_context():
                try:
                    barrier.wait(timeout=30)
                    services.record_leave(caller.consult_id, caller.participant_id, "left")
                    if ends:
                        services.end_session(caller.consult_id)
                    db.session.commit()
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    db.session.rollback()
                finally:
                    db.session.remove()

        # Every other round, both think they were the last one out.
        threads = [threading.Thread(target=leave, args=(caller, index == 1 or round_ % 2 == 0))
                   for index, caller in enumerate(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, (round_, errors)
        db.session.expire_all()
        assert services.active_session(call_consult.id) is None
        open_rows = db.session.scalars(select(VideoParticipation).join(VideoSession).where(
            VideoSession.consult_id == call_consult.id, VideoParticipation.left_at.is_(None)))
        assert not list(open_rows)
