"""Fixtures shared with the security tests, a checkpoint file of each test's own, and what an
attacker with write access to the database does."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from telehealth.audit.models import AuditEvent
from telehealth.extensions import db
from tests.security.conftest import build_case  # noqa: F401


@pytest.fixture(autouse=True)
def checkpoint_file(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[Path]:
    """Checkpoints of this test's chain only, written at every commit, with a fresh key."""
    path = tmp_path / "checkpoints" / "audit_checkpoints.jsonl"
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_FILE", str(path))
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY_FILE", str(path.parent / "key"))
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", None)
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_INTERVAL", 0.0)
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_SYSLOG", "")
    yield path


def is_postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


def tamper(sql: str, **params: Any) -> None:
    """What an attacker with database access does; on PostgreSQL they must lift the trigger."""
    if is_postgres():
        db.session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER "
                                "audit_events_append_only"))
    db.session.execute(text(sql), params)
    if is_postgres():
        db.session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER "
                                "audit_events_append_only"))
    db.session.commit()
    db.session.expire_all()


def cut_end(count: int) -> tuple[int, int]:
    """Delete the newest `count` entries and point the chain head at the one before them,
    as the issue describes; return the (first, last) sequence numbers deleted."""
    newest = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())
                                .limit(count + 1)).all()
    keep = newest[-1]
    first, last = keep.seq + 1, newest[0].seq
    db.session.execute(text("UPDATE audit_chain_head SET last_seq = :seq, last_hash = :hash"),
                       {"seq": keep.seq, "hash": keep.hash})
    tamper("DELETE FROM audit_events WHERE seq > :seq", seq=keep.seq)
    return first, last


def run_verify(app: Flask, *args: str) -> tuple[int, str]:
    """`flask audit verify`: its exit code and everything it printed; never a traceback."""
    result = app.test_cli_runner().invoke(args=["audit", "verify", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture()
def make_trail(world: dict[str, Any]) -> Callable[[int], list[AuditEvent]]:
    """Commit `count` more entries, one commit each; return the whole trail."""
    from telehealth.audit.services import record

    actor_id = world["clinician"].id  # still known after a restore replaced the rows

    def make(count: int = 10) -> list[AuditEvent]:
        for n in range(count):
            record("consult.viewed", consult_id=n, actor_id=actor_id, n=n)
            db.session.commit()
        return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))

    return make
