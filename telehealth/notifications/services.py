"""Queue notifications with the transaction; deliver them only once it has committed.

A notification about an offer that was rolled back would send people to nothing, so
`notify()` only queues on the session and the after-commit hook delivers.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from flask import current_app, has_app_context
from flask_babel import force_locale
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from telehealth.accounts.models import Role, User
from telehealth.extensions import db, socketio
from telehealth.security.sessions import user_room

logger = logging.getLogger(__name__)

NAMESPACE = "/notifications"


@dataclass
class Notification:
    user_id: int
    event: str
    payload: dict[str, Any]
    email_to: str = ""
    subject: str = ""
    body: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def notify(user: User, event_name: str,
           payload: dict[str, Any] | Callable[[], dict[str, Any]],
           subject: Any = None, body: Any = None) -> None:
    """Queue a real-time event (and an e-mail if subject/body are callables) for one user.

    A callable payload, subject and body are called under the recipient's own locale, so
    what the page shows as is and the e-mail are in their language. Notifications knows
    nothing of consults: the caller renders the text.
    """
    subject_text = body_text = ""
    with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        if callable(payload):
            payload = payload()
        if subject is not None and body is not None:
            subject_text, body_text = str(subject()), str(body())
    config = {key: current_app.config.get(key) for key in (
        "MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USERNAME", "MAIL_PASSWORD",
        "MAIL_SENDER", "MAIL_TIMEOUT")}
    db.session.info.setdefault("notifications", []).append(Notification(
        user_id=user.id, event=event_name, payload=payload, email_to=user.email,
        subject=subject_text, body=body_text, config=config,
    ))


def coordinators() -> list[User]:
    return list(db.session.scalars(select(User).where(
        User.role.in_((Role.COORDINATOR, Role.ADMIN)), User.active.is_(True))))


def send_email(item: Notification) -> None:
    """Send one e-mail through the configured SMTP server; log (never raise) on failure."""
    config = item.config
    if not config.get("MAIL_SERVER") or not item.subject:
        return
    message = EmailMessage()
    message["From"] = config["MAIL_SENDER"]
    message["To"] = item.email_to
    message["Subject"] = item.subject
    message.set_content(item.body)
    try:
        with smtplib.SMTP(config["MAIL_SERVER"], int(config["MAIL_PORT"]),
                          timeout=float(config.get("MAIL_TIMEOUT") or 10)) as smtp:
            if config.get("MAIL_USE_TLS"):
                smtp.starttls()
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException):
        logger.exception("e-mail %r to user %s not sent", item.event, item.user_id)


def deliver(items: list[Notification]) -> None:
    """Emit each event to its user's room and send its e-mail."""
    for item in items:
        try:
            socketio.emit(item.event, item.payload, to=user_room(item.user_id),
                          namespace=NAMESPACE)
        except Exception:  # noqa: BLE001 - a dead message queue must not undo a commit
            logger.exception("event %r to user %s not emitted", item.event, item.user_id)
        send_email(item)


@event.listens_for(Session, "after_commit")
def _deliver_after_commit(session: Session) -> None:
    items = session.info.pop("notifications", None)
    if items and has_app_context():
        deliver(items)


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, previous_transaction: object) -> None:
    session.info.pop("notifications", None)

