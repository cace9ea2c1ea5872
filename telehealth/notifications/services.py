"""Telling people: a live event to their room and an e-mail, written to the outbox.

`notify()` writes rows in the caller's transaction; a worker delivers them once it has
committed (`telehealth/notifications/outbox.py`), so a change that rolls back sends nothing
and a request never waits on the mail server. This is a leaf: callers hand in text already
rendered in the recipient's language (`in_language_of(user)`) and a JSON payload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from blinker import Namespace
from flask import current_app
from flask_babel import force_locale
from sqlalchemy import select

from telehealth import transaction
from telehealth.accounts.models import Role, User
from telehealth.extensions import db
from telehealth.notifications.models import OutboxKind, OutboxMessage

NAMESPACE = "/notifications"

signals = Namespace()
#: Sent after a commit that wrote outbox messages: the job runner delivers them soon.
outbox_committed = signals.signal("outbox-committed")


def now() -> datetime:
    """Outbox times are the real time, never the test clock: retries must come due."""
    return datetime.now(UTC)


@contextmanager
def in_language_of(user: User) -> Iterator[None]:
    """Render the texts and payload of a notification in the recipient's interface language."""
    with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        yield


def mail_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


def notify(user: User, event: str,
           payload: dict[str, Any] | Callable[[], dict[str, Any]],
           subject: Any = "", body: Any = "") -> None:
    """Write a live event for one user, and an e-mail when a subject and body are given.

    Texts and a callable payload are rendered in the recipient's language here (callers
    may pass lazy strings or callables); notifications knows nothing of consults. Both
    are delivered once the caller's transaction commits, and never if it rolls back.
    """
    with in_language_of(user):
        if callable(payload):
            payload = payload()
        subject_text = str((subject() if callable(subject) else subject) or "")
        body_text = str((body() if callable(body) else body) or "")
    at = now()
    rows = [OutboxMessage(kind=OutboxKind.EVENT, user_id=user.id, event=event,
                          payload=dict(payload), next_attempt_at=at, created_at=at)]
    if subject_text and body_text and user.email and mail_configured():
        rows.append(OutboxMessage(kind=OutboxKind.EMAIL, user_id=user.id, event=event,
                                  recipient=user.email, subject=subject_text, body=body_text,
                                  payload={}, next_attempt_at=at, created_at=at))
    db.session.add_all(rows)
    transaction.after_commit(_announce_commit, key="outbox")


def _announce_commit() -> None:
    outbox_committed.send(current_app._get_current_object())  # type: ignore[attr-defined]


def coordinators() -> list[User]:
    """Active coordinators and administrators (those told about escalations)."""
    return list(db.session.scalars(select(User).where(
        User.role.in_((Role.COORDINATOR, Role.ADMIN)), User.active.is_(True))))
