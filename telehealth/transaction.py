"""Work that waits for the current transaction to end: before or after it commits, or after it
rolls back.

The one place that listens to SQLAlchemy's session events. A feature that must act only once
its change is durable (deliver the outbox, disconnect sockets of ended sessions) or undo
something outside the database when the change is dropped (remove an uploaded file) registers
a callback here::

    transaction.after_commit(partial(sessions_ended.send, None, user_ids={user.id}))
    transaction.after_rollback(partial(os.remove, path))

Callbacks belong to the innermost transaction open when they are registered: a savepoint
that is released hands them to its parent, one that rolls back runs its `after_rollback`
callbacks and drops the rest. A transaction that ends without a commit (rollback, or a
session closed or removed mid-transaction) counts as rolled back. A `key` makes a
registration once per transaction (a batch that is flushed by one callback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from telehealth.extensions import db

logger = logging.getLogger(__name__)

_HOOKS = "telehealth.transaction.hooks"
Callback = Callable[[], Any]
AnySession = Session | scoped_session[Session] | None


@dataclass
class _Hooks:
    before_commit: list[Callback] = field(default_factory=list)
    after_commit: list[Callback] = field(default_factory=list)
    after_rollback: list[Callback] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)

    def merge(self, child: _Hooks) -> None:
        self.before_commit += child.before_commit
        self.after_commit += child.after_commit
        self.after_rollback += child.after_rollback
        self.keys |= child.keys
        for name, value in child.values.items():
            if isinstance(value, list) and isinstance(self.values.get(name), list):
                self.values[name].extend(value)
            else:
                self.values[name] = value


def _session(session: AnySession) -> Session:
    if session is None:
        return db.session()
    if isinstance(session, scoped_session):
        return session()
    return session


def _all_hooks(session: Session) -> dict[SessionTransaction, _Hooks]:
    hooks: dict[SessionTransaction, _Hooks] = session.info.setdefault(_HOOKS, {})
    return hooks


def _innermost(session: Session) -> SessionTransaction:
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:  # nothing has happened yet: the work belongs to what comes
        transaction = session.begin()
    return transaction


def _hooks(session: AnySession) -> _Hooks:
    session = _session(session)
    return _all_hooks(session).setdefault(_innermost(session), _Hooks())


def _add(when: str, fn: Callback, session: AnySession, key: str | None) -> None:
    hooks = _hooks(session)
    if key is not None:
        if (when, key) in hooks.keys:
            return
        hooks.keys.add((when, key))
    getattr(hooks, when).append(fn)


def before_commit(fn: Callback, session: AnySession = None, key: str | None = None) -> None:
    """Run fn just before the transaction commits (it may still write; raising aborts)."""
    _add("before_commit", fn, session, key)


def after_commit(fn: Callback, session: AnySession = None, key: str | None = None) -> None:
    """Run fn once the transaction has committed (errors are logged, never raised)."""
    _add("after_commit", fn, session, key)


def after_rollback(fn: Callback, session: AnySession = None, key: str | None = None) -> None:
    """Run fn if the transaction rolls back or is discarded instead of committed."""
    _add("after_rollback", fn, session, key)


def collected(name: str, session: AnySession = None) -> list[Any]:
    """A list that lives as long as the current transaction (gather a batch in it)."""
    values = _hooks(session).values
    items: list[Any] = values.setdefault(name, [])
    return items


def _run(callbacks: list[Callback], when: str) -> None:
    for fn in callbacks:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the transaction is over; one failure stops nothing
            logger.exception("%s callback %r failed", when, fn)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint: its work waits for the real commit
    hooks = _all_hooks(session)
    root = session.get_transaction()
    # A callback may register another (audit entries written while chaining): loop.
    while root is not None and (pending := hooks.get(root)) and pending.before_commit:
        callbacks, pending.before_commit = pending.before_commit, []
        # A callback registered again from here (same key) must not be skipped.
        pending.keys = {k for k in pending.keys if k[0] != "before_commit"}
        for fn in callbacks:
            fn()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    hooks = _all_hooks(session)
    nested = session.get_nested_transaction()
    if nested is not None:
        child = hooks.pop(nested, None)
        if child is not None and nested.parent is not None:
            hooks.setdefault(nested.parent, _Hooks()).merge(child)
        return
    done = list(hooks.values())
    hooks.clear()
    for item in done:
        _run(item.after_commit, "after-commit")


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    hooks = session.info.get(_HOOKS)
    if not hooks:
        return
    # Committed work was taken at after_commit; what is left here was rolled back.
    if transaction.parent is None:
        dropped = list(hooks.values())
        hooks.clear()
    else:
        item = hooks.pop(transaction, None)
        dropped = [item] if item is not None else []
    for item in dropped:
        _run(item.after_rollback, "after-rollback")
