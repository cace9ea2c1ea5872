"""The audit trail: who did what to which consult, when (UTC) and from where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telehealth import clock
from telehealth.db_types import UTCDateTime
from telehealth.extensions import Model


class AuditEvent(Model):
    """One entry; `seq`, `prev_hash` and `hash` chain it to the entry before (see chain.py)."""

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
    seq: Mapped[int | None] = mapped_column(unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditChainHead(Model):
    """The newest link of the chain, so that deleting the last entries is noticed too."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
