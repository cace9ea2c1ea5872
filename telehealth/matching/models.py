"""Offers of a consult to specialists."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.consults.models import Consult
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import User


class OfferStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # somebody else took the consult, or it was cancelled


class Offer(Model):
    __tablename__ = "offers"
    __table_args__ = (UniqueConstraint("consult_id", "specialist_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    specialist_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[OfferStatus] = mapped_column(
        string_enum(OfferStatus), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    consult: Mapped[Consult] = relationship()
    specialist: Mapped[User] = relationship()


# Matching counts each candidate's open consults: by specialist, then status, from one index.
Index("ix_consults_specialist_id_status", Consult.specialist_id, Consult.status)
# A specialist's waiting offers, oldest first (the dashboard's keyset pages).
Index("ix_offers_specialist_id_status_created_at_id", Offer.specialist_id, Offer.status,
      Offer.created_at, Offer.id)
# The sweeper's due offers: pending ones by deadline.
Index("ix_offers_status_expires_at", Offer.status, Offer.expires_at)
