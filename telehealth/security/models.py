"""Sign-in attempts, kept in the database so every process counts the same ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from telehealth import clock
from telehealth.db_types import UTCDateTime
from telehealth.extensions import Model


class SignInAttempt(Model):
    __tablename__ = "sign_in_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now, index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # as typed, lower-cased
    ip: Mapped[str] = mapped_column(String(45), index=True)
    succeeded: Mapped[bool] = mapped_column(default=False)
    # The known-device cookie's id when the attempt came with one (OWASP "device cookies"):
    # failures from a known device count for that device only.
    device: Mapped[str | None] = mapped_column(String(32))
