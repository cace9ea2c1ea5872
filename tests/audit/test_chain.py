"""The audit trail is append-only and hash-chained: changing or deleting a row is detected."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from telehealth.audit.chain import entry_hash, verify_chain
from telehealth.audit.models import AuditEvent
from telehealth.audit.services import record
from telehealth.extensions import db
from tests.audit.conftest import is_postgres, run_verify, tamper


@pytest.fixture()
def trail(make_trail):
    """A short trail of ten committed entries besides the world's own."""
    return make_trail(10)


def test_an_untouched_chain_verifies(app, trail):
    report = verify_chain(db.session())
    assert report.intact and report.entries == len(trail)
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))
    assert all(e.prev_hash == p.hash for p, e in zip(trail, trail[1:], strict=False))
    code, output = run_verify(app)
    assert code == 0 and f"intact: {len(trail)} entries" in output


@pytest.mark.parametrize(("column", "value"), [
    ("detail", '{"n": 99}'), ("actor_id", 424242), ("ip", "6.6.6.6"),
    ("action", "consult.created"), ("consult_id", 77),
])
def test_changing_one_row_is_detected(app, trail, column, value):
    victim = trail[4]
    tamper(f"UPDATE audit_events SET {column} = :v WHERE id = :id", v=value, id=victim.id)
    db.session.expire_all()
    report = verify_chain(db.session())
    assert not report.intact
    assert any(f"#{victim.seq} (id {victim.id}) was changed" in p for p in report.problems)
    code, output = run_verify(app)
    assert code == 1 and "TAMPERED" in output


@pytest.mark.parametrize("position", [0, 5, -1])
def test_deleting_a_row_is_detected(app, trail, position):
    victim = trail[position]
    tamper("DELETE FROM audit_events WHERE id = :id", id=victim.id)
    db.session.expire_all()
    report = verify_chain(db.session())
    assert not report.intact, report
    assert run_verify(app)[0] == 1


def test_rewriting_a_row_with_a_fresh_hash_needs_the_key(app, trail):
    victim = trail[3]
    victim.detail = '{"n": 1000}'
    forged = entry_hash(victim, victim.prev_hash or "", b"a guessed key")
    db.session.expire_all()
    tamper("UPDATE audit_events SET detail = :d, hash = :h WHERE id = :id",
            d='{"n": 1000}', h=forged, id=victim.id)
    db.session.expire_all()
    assert not verify_chain(db.session()).intact


def test_an_inserted_row_is_detected(app, trail):
    tamper("INSERT INTO audit_events (at, action, object_type, detail, ip, seq, prev_hash, hash)"
            " VALUES (:at, 'login.succeeded', '', '', '', 5000, :p, :h)",
            at=trail[0].at.replace(tzinfo=None), p=trail[-1].hash, h="0" * 64)
    db.session.expire_all()
    assert not verify_chain(db.session()).intact


def test_a_rolled_back_entry_leaves_no_gap(trail):
    record("note.created", consult_id=1)
    db.session.rollback()
    record("note.created", consult_id=2)
    db.session.commit()
    report = verify_chain(db.session())
    assert report.intact and report.entries == len(trail) + 1


@pytest.mark.postgres
def test_the_database_refuses_updates_and_deletes_on_postgresql(trail):
    if not is_postgres():
        pytest.skip("the append-only trigger exists on PostgreSQL")
    from sqlalchemy.exc import DBAPIError

    for sql in ("UPDATE audit_events SET ip = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(sql))
        db.session.rollback()


@pytest.mark.postgres
def test_concurrent_appends_make_one_unbroken_chain(app, world):
    if not is_postgres():
        pytest.skip("concurrent writers need PostgreSQL")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with app.app_context():
                for i in range(8):
                    record("consult.viewed", consult_id=n, i=i)
                    record("attachment.viewed", consult_id=n, i=i)
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = verify_chain(db.session())
    assert report.intact, report.problems
    assert db.session.scalar(db.select(db.func.count(AuditEvent.id)).where(
        AuditEvent.action.in_(["consult.viewed", "attachment.viewed"]))) == 6 * 8 * 2
