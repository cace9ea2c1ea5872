"""Specialist profiles, their credentials, weekly availability, leave, and sign-up invites."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.accounts.models import user_specialties
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import User

# A credential that expires within this many days is flagged on the roster.
EXPIRY_WARNING_DAYS = 30


class ProfileStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, waiting for a coordinator's approval
    ACTIVE = "active"
    SUSPENDED = "suspended"


# The only place that says which roster status may follow which.
PROFILE_TRANSITIONS: dict[ProfileStatus, frozenset[ProfileStatus]] = {
    ProfileStatus.PENDING: frozenset({ProfileStatus.ACTIVE, ProfileStatus.SUSPENDED}),
    ProfileStatus.ACTIVE: frozenset({ProfileStatus.SUSPENDED}),
    ProfileStatus.SUSPENDED: frozenset({ProfileStatus.ACTIVE}),
}


class CredentialStatus(enum.StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    REJECTED = "rejected"


class SpecialistProfile(Model):
    """What the roster knows about one volunteer specialist (one row per specialist user)."""

    __tablename__ = "specialist_profiles"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        Index("ix_specialist_profiles_eligible", "status", "credential_status",
              "licence_expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    status: Mapped[ProfileStatus] = mapped_column(string_enum(ProfileStatus),
                                                  default=ProfileStatus.PENDING)
    subspecialty: Mapped[str] = mapped_column(String(120), default="")
    capacity: Mapped[int] = mapped_column(default=3)  # most open consults at once

    licence_number: Mapped[str] = mapped_column(String(60), default="")
    licence_body: Mapped[str] = mapped_column(String(160), default="")
    licence_country: Mapped[str] = mapped_column(String(2), default="")
    licence_expires_on: Mapped[date | None] = mapped_column(Date())
    document_stored_name: Mapped[str | None] = mapped_column(String(64))
    document_name: Mapped[str] = mapped_column(String(255), default="")
    credential_status: Mapped[CredentialStatus] = mapped_column(
        string_enum(CredentialStatus), default=CredentialStatus.UNVERIFIED)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Running mean of minutes from offer to answer: spreads work to the responsive.
    response_minutes_avg: Mapped[float | None]
    responses_count: Mapped[int] = mapped_column(default=0)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    verified_by: Mapped[User | None] = relationship(foreign_keys=[verified_by_id])
    windows: Mapped[list[AvailabilityWindow]] = relationship(
        primaryjoin="SpecialistProfile.user_id == foreign(AvailabilityWindow.user_id)",
        order_by="(AvailabilityWindow.weekday, AvailabilityWindow.start_minute)",
        viewonly=True,
    )
    leaves: Mapped[list[LeavePeriod]] = relationship(
        primaryjoin="SpecialistProfile.user_id == foreign(LeavePeriod.user_id)",
        order_by="LeavePeriod.starts_at",
        viewonly=True,
    )

    def credential_days_left(self, today: date) -> int | None:
        if self.licence_expires_on is None:
            return None
        return (self.licence_expires_on - today).days


class AvailabilityWindow(Model):
    """A weekly slot in the specialist's own local time (weekday 0 = Monday, minutes 0..1440)."""

    __tablename__ = "availability_windows"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_range"),
        CheckConstraint("start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440",
                        name="minute_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int]
    start_minute: Mapped[int]
    end_minute: Mapped[int]


class LeavePeriod(Model):
    """A stretch of time the specialist takes no new consults (UTC, end exclusive)."""

    __tablename__ = "leave_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(200), default="")


class Invite(Model):
    """A one-time, expiring sign-up link for a new specialist; only its hash is stored."""

    __tablename__ = "specialist_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])


# Matching looks specialists up by specialty; the association's primary key starts with user_id.
Index("ix_user_specialties_specialty_id", user_specialties.c.specialty_id)
