"""ICD-10 codes attached to a consult."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import User


class ConsultDiagnosis(Model):
    __tablename__ = "consult_diagnoses"
    __table_args__ = (UniqueConstraint("consult_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    code: Mapped[str] = mapped_column(String(10))  # WHO ICD-10, without the dot: "J189"
    added_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    added_by: Mapped[User] = relationship()
