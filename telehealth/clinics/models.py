"""Clinics that request consults."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from telehealth import clock
from telehealth.db_types import UTCDateTime
from telehealth.extensions import Model


class Clinic(Model):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    city: Mapped[str] = mapped_column(String(120), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Comma-separated BCP 47 codes the clinic's staff read, e.g. "fr,sw".
    languages: Mapped[str] = mapped_column(String(120), default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    # The administrative area (telehealth.places) its consults count in for surveillance.
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)

    @property
    def language_list(self) -> list[str]:
        return [code for code in self.languages.split(",") if code]

    def __repr__(self) -> str:
        return f"<Clinic {self.name}>"
