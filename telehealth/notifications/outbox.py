"""Delivering the outbox: claim a due message, send it, mark it sent once or schedule a retry.

A job, hence a transaction boundary of its own (it commits). One message is claimed at a time
by a conditional UPDATE that pushes its due time out by a lease and counts the attempt; on
PostgreSQL the candidate row is picked `FOR UPDATE SKIP LOCKED`, so workers never wait for
each other, and SQLite runs one writer at a time anyway: either way two workers never hold
the same message. The send happens outside any transaction (a slow mail server holds no
lock); if the worker dies while sending, the lease runs out and the message is due again.
A failure is retried with exponential back-off until OUTBOX_MAX_ATTEMPTS, then the message
is marked failed for an administrator to look at (and retry).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, func, select, update

from telehealth.extensions import db, socketio
from telehealth.notifications.models import OutboxKind, OutboxMessage, OutboxStatus
from telehealth.notifications.services import NAMESPACE, now
from telehealth.security.sessions import user_room

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A message could not be delivered this time."""


@dataclass
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def _config(name: str) -> Any:
    return current_app.config[name]


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt: base * 2^(attempts - 1), at most OUTBOX_RETRY_MAX."""
    base = float(_config("OUTBOX_RETRY_BASE_SECONDS"))
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0),
                                 float(_config("OUTBOX_RETRY_MAX_SECONDS"))))


def claim_next(kind: OutboxKind | None = None) -> OutboxMessage | None:
    """Take the next due message for this worker alone (committed), or None."""
    at = now()
    due = (select(OutboxMessage.id)
           .where(OutboxMessage.status == OutboxStatus.PENDING,
                  OutboxMessage.next_attempt_at <= at)
           .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(1))
    if kind is not None:
        due = due.where(OutboxMessage.kind == kind)
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    lease = timedelta(seconds=float(_config("OUTBOX_LEASE_SECONDS")))
    claimed = db.session.scalar(
        update(OutboxMessage)
        .where(OutboxMessage.id == due.scalar_subquery(),
               OutboxMessage.status == OutboxStatus.PENDING,
               OutboxMessage.next_attempt_at <= at)
        .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=at + lease)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if claimed is None:
        return None
    message = db.session.get(OutboxMessage, claimed, populate_existing=True)
    if message is not None:
        db.session.expunge(message)
    db.session.rollback()  # no transaction stays open while the message is sent
    return message


def send_email(message: OutboxMessage) -> None:
    """Send one e-mail through the configured SMTP server."""
    config = current_app.config
    if not config.get("MAIL_SERVER"):
        raise DeliveryError("no mail server is configured (TELEHEALTH_MAIL_SERVER)")
    email = EmailMessage()
    email["From"] = config["MAIL_SENDER"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email.set_content(message.body)
    try:
        with smtplib.SMTP(config["MAIL_SERVER"], int(config["MAIL_PORT"]),
                          timeout=float(config.get("MAIL_TIMEOUT") or 10)) as smtp:
            if config.get("MAIL_USE_TLS"):
                smtp.starttls()
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
            smtp.send_message(email)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def emit_event(message: OutboxMessage) -> None:
    """Emit a live event to the user's room (through the message queue when configured)."""
    if message.user_id is None:
        return
    try:
        socketio.emit(message.event, message.payload, to=user_room(message.user_id),
                      namespace=NAMESPACE)
    except Exception as exc:  # noqa: BLE001 - a dead message queue is one more retry
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def _finish(message: OutboxMessage, error: str | None) -> OutboxStatus:
    """Record the outcome of the attempt this worker claimed; commit."""
    at = now()
    if error is None:
        values: dict[str, Any] = {"status": OutboxStatus.SENT, "sent_at": at,
                                  "last_error": None}
    elif message.attempts >= int(_config("OUTBOX_MAX_ATTEMPTS")):
        values = {"status": OutboxStatus.FAILED, "last_error": error[:2000]}
    else:
        values = {"next_attempt_at": at + backoff(message.attempts), "last_error": error[:2000]}
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.status == OutboxStatus.PENDING,
               OutboxMessage.attempts == message.attempts)
        .values(**values).execution_options(synchronize_session=False))
    db.session.commit()
    return values.get("status", OutboxStatus.PENDING)


def deliver(message: OutboxMessage) -> OutboxStatus:
    """Send one claimed message and record the outcome."""
    try:
        if message.kind == OutboxKind.EMAIL:
            send_email(message)
        else:
            emit_event(message)
    except DeliveryError as exc:
        logger.warning("outbox message %s (%s %r to user %s), attempt %s: %s", message.id,
                       message.kind.value, message.event, message.user_id, message.attempts,
                       exc)
        return _finish(message, str(exc))
    return _finish(message, None)


def deliver_due(limit: int = 500) -> DeliveryResult:
    """Deliver due messages, live events before e-mail (a slow mail server delays no event)."""
    result = DeliveryResult()
    for kind in (OutboxKind.EVENT, OutboxKind.EMAIL):
        for _ in range(limit):
            message = claim_next(kind)
            if message is None:
                break
            status = deliver(message)
            if status == OutboxStatus.SENT:
                result.sent += 1
            elif status == OutboxStatus.FAILED:
                result.failed += 1
            else:
                result.retried += 1
    return result


def retry(message_id: int) -> bool:
    """An administrator sends a failed message round again, with a fresh set of attempts.

    Only failed ones: a failing message may be in a worker's hands right now.
    """
    result = cast(CursorResult[Any], db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.FAILED)
        .values(status=OutboxStatus.PENDING, next_attempt_at=now(), attempts=0)
        .execution_options(synchronize_session=False)))
    return bool(result.rowcount)


def troubled(limit: int = 200) -> list[OutboxMessage]:
    """Messages that failed for good, then those still failing, newest first."""
    return list(db.session.scalars(
        select(OutboxMessage)
        .where((OutboxMessage.status == OutboxStatus.FAILED)
               | ((OutboxMessage.status == OutboxStatus.PENDING)
                  & OutboxMessage.last_error.is_not(None)))
        .order_by(OutboxMessage.status, OutboxMessage.created_at.desc(),
                  OutboxMessage.id.desc())
        .limit(limit)))


def counts() -> dict[OutboxStatus, int]:
    """How many messages are in each status."""
    rows = db.session.execute(select(OutboxMessage.status, func.count(OutboxMessage.id))
                              .group_by(OutboxMessage.status))
    return {status: count for status, count in rows}
