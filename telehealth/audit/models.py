"""The audit trail: who did what to which consult, when (UTC) and from where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telehealth import clock
from telehealth.db_types import UTCDateTime
from telehealth.extensions import db


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now, index=True)
    # No foreign keys: the trail must outlive what it talks about.
    actor_id: Mapped[int | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    consult_id: Mapped[int | None] = mapped_column(index=True)
    object_type: Mapped[str] = mapped_column(String(30), default="")
    object_id: Mapped[int | None]
    detail: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(45), default="")
