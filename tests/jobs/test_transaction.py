"""The after-commit / after-rollback helper: work runs once its transaction's fate is known."""

from __future__ import annotations

from sqlalchemy import text

from telehealth import transaction
from telehealth.extensions import db


def _touch() -> None:
    db.session.execute(text("SELECT 1"))


def test_after_commit_runs_once_after_the_commit_and_after_rollback_only_on_rollback():
    ran: list[str] = []
    _touch()
    transaction.after_commit(lambda: ran.append("committed"))
    transaction.after_rollback(lambda: ran.append("rolled back"))
    assert ran == []
    db.session.commit()
    db.session.commit()
    assert ran == ["committed"]

    _touch()
    transaction.after_commit(lambda: ran.append("committed 2"))
    transaction.after_rollback(lambda: ran.append("rolled back 2"))
    db.session.rollback()
    db.session.commit()
    assert ran == ["committed", "rolled back 2"]


def test_a_session_closed_mid_transaction_counts_as_rolled_back():
    ran: list[str] = []
    _touch()
    transaction.after_commit(lambda: ran.append("committed"))
    transaction.after_rollback(lambda: ran.append("rolled back"))
    db.session.close()
    db.session.commit()
    assert ran == ["rolled back"]


def test_savepoints_hand_work_to_their_parent_or_drop_it():
    ran: list[str] = []
    _touch()
    with db.session.begin_nested():
        transaction.after_commit(lambda: ran.append("kept"))
    savepoint = db.session.begin_nested()
    transaction.after_commit(lambda: ran.append("dropped"))
    transaction.after_rollback(lambda: ran.append("undone"))
    savepoint.rollback()
    assert ran == ["undone"]
    db.session.commit()
    assert ran == ["undone", "kept"]


def test_a_key_registers_once_per_transaction_and_a_failing_callback_stops_no_other():
    ran: list[str] = []
    _touch()
    for _ in range(3):
        transaction.after_commit(lambda: ran.append("batch"), key="batch")
    transaction.after_commit(lambda: 1 / 0)
    transaction.after_commit(lambda: ran.append("after the failure"))
    db.session.commit()
    assert ran == ["batch", "after the failure"]
