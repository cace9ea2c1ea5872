"""Syndromes, weekly reports, alerts with their EWARS workflow, officers' areas, share links."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Date, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import User
    from telehealth.clinics.models import Clinic
    from telehealth.places.models import Area


class Syndrome(Model):
    """A syndrome field epidemiologists count, the ICD-10 codes behind it and its alert rule."""

    __tablename__ = "syndromes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    # Comma-separated ICD-10 codes or prefixes without dots: "A00,A09,K529".
    icd10_prefixes: Mapped[str] = mapped_column(Text)
    # One of detectors.DETECTORS; "fixed" alerts at `threshold` cases in a week.
    detector: Mapped[str] = mapped_column(String(20), default="farrington")
    threshold: Mapped[int] = mapped_column(default=1)
    active: Mapped[bool] = mapped_column(default=True)

    @property
    def prefixes(self) -> list[str]:
        return [p for p in self.icd10_prefixes.split(",") if p]


class WeeklyReport(Model):
    """A clinic's count of each syndrome for one epidemiological week (zero counts included)."""

    __tablename__ = "weekly_reports"
    __table_args__ = (UniqueConstraint("clinic_id", "week_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    week_start: Mapped[date] = mapped_column(Date)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    clinic: Mapped[Clinic] = relationship()
    counts: Mapped[list[WeeklyCount]] = relationship(cascade="all, delete-orphan")


class WeeklyCount(Model):
    __tablename__ = "weekly_counts"
    __table_args__ = (UniqueConstraint("report_id", "syndrome_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("weekly_reports.id"), index=True)
    syndrome_id: Mapped[int] = mapped_column(ForeignKey("syndromes.id"))
    cases: Mapped[int]


class AlertStage(enum.StrEnum):
    VERIFICATION = "verification"
    MONITORING = "monitoring"
    RISK_ASSESSMENT = "risk_assessment"
    CHARACTERISATION = "characterisation"
    CLOSED = "closed"
    DISCARDED = "discarded"


A = AlertStage
# EWARS: verify (discard, monitor or start a risk assessment) → assess → characterise → outcome.
# Every change goes through surveillance.services.move_alert(), a conditional UPDATE.
ALERT_TRANSITIONS: dict[AlertStage, frozenset[AlertStage]] = {
    A.VERIFICATION: frozenset({A.DISCARDED, A.MONITORING, A.RISK_ASSESSMENT}),
    A.MONITORING: frozenset({A.DISCARDED, A.RISK_ASSESSMENT}),
    A.RISK_ASSESSMENT: frozenset({A.CHARACTERISATION}),
    A.CHARACTERISATION: frozenset({A.CLOSED}),
    A.CLOSED: frozenset(),
    A.DISCARDED: frozenset(),
}
OPEN_STAGES = frozenset({A.VERIFICATION, A.MONITORING, A.RISK_ASSESSMENT,
                         A.CHARACTERISATION})
del A


class AlertOutcome(enum.StrEnum):
    RESPONSE = "response"
    NO_RESPONSE = "no_response"
    REFERRED = "referred"


class Alert(Model):
    """A detector's signal for one syndrome, area and week, and what people made of it."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("syndrome_id", "area_id", "week_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    syndrome_id: Mapped[int] = mapped_column(ForeignKey("syndromes.id"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    week_start: Mapped[date] = mapped_column(Date, index=True)
    detector: Mapped[str] = mapped_column(String(20))
    observed: Mapped[int]
    expected: Mapped[float | None] = mapped_column(Float)
    upper_bound: Mapped[float | None] = mapped_column(Float)
    # JSON: the weeks, counts, expected values and bounds the detector saw; why a simpler
    # detector stood in, if one did.
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    stage: Mapped[AlertStage] = mapped_column(string_enum(AlertStage), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the stage's clock ran out and the sweeper told people (once); cleared on each move.
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    likelihood: Mapped[int | None]  # 1 almost certain not … 5 almost certain
    consequence: Mapped[int | None]  # 1 minimal … 5 severe
    outcome: Mapped[AlertOutcome | None] = mapped_column(string_enum(AlertOutcome))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    syndrome: Mapped[Syndrome] = relationship()
    area: Mapped[Area] = relationship()
    owner: Mapped[User | None] = relationship()
    notes: Mapped[list[AlertNote]] = relationship(order_by="AlertNote.id")

    @property
    def reference(self) -> str:
        return f"A-{self.id:05d}"


class AlertNote(Model):
    """A note on an alert; each move of the workflow writes one too (what, who, when)."""

    __tablename__ = "alert_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    stage: Mapped[AlertStage] = mapped_column(string_enum(AlertStage))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    author: Mapped[User | None] = relationship()


class OfficerArea(Model):
    """An area a surveillance officer is responsible for (and every area inside it)."""

    __tablename__ = "officer_areas"
    __table_args__ = (UniqueConstraint("user_id", "area_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)


class ShareLink(Model):
    """A revocable link to an area's bulletin for partners without an account."""

    __tablename__ = "bulletin_share_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the token
    label: Mapped[str] = mapped_column(String(160), default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    area: Mapped[Area] = relationship()
