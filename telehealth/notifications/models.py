"""The outbox: every e-mail and live event, written in the transaction that causes it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model


class OutboxKind(enum.StrEnum):
    EMAIL = "email"
    EVENT = "event"  # a Socket.IO event to the user's room


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # waiting, being sent, or failing and due again at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt; an admin may retry it


class OutboxMessage(Model):
    """One message to one person, delivered by a worker after the transaction commits."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The delivery query: pending rows by due time.
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OutboxKind] = mapped_column(string_enum(OutboxKind))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    event: Mapped[str] = mapped_column(String(100))  # what it is about, e.g. "offer.new"
    recipient: Mapped[str] = mapped_column(String(255), default="")  # the e-mail address
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[OutboxStatus] = mapped_column(string_enum(OutboxStatus),
                                                 default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Due time; while a worker holds the message it is pushed out by the claim's lease.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
