"""Consult requests, their state machine and their attachments."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import Specialty, User
    from telehealth.clinics.models import Clinic


class ConsultStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    OFFERED = "offered"
    ESCALATED = "escalated"
    ACCEPTED = "accepted"
    ANSWERED = "answered"
    CLOSED = "closed"
    CANCELLED = "cancelled"


S = ConsultStatus
# The only place that says which status may follow which. Every change goes through
# consults.services.transition(), which refuses anything not listed here.
ALLOWED_TRANSITIONS: dict[ConsultStatus, frozenset[ConsultStatus]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.OFFERED, S.ESCALATED, S.ACCEPTED, S.CANCELLED}),
    S.OFFERED: frozenset({S.OFFERED, S.SUBMITTED, S.ESCALATED, S.ACCEPTED, S.CANCELLED}),
    S.ESCALATED: frozenset({S.OFFERED, S.ACCEPTED, S.CANCELLED}),
    S.ACCEPTED: frozenset({S.ANSWERED, S.CANCELLED}),
    S.ANSWERED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}
OPEN_STATUSES = frozenset({S.SUBMITTED, S.OFFERED, S.ESCALATED, S.ACCEPTED, S.ANSWERED})
# Statuses in which a specialist may still take the consult.
TAKEABLE_STATUSES = frozenset({S.SUBMITTED, S.OFFERED, S.ESCALATED})
del S


class Urgency(enum.StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class ConsultMode(enum.StrEnum):
    WRITTEN = "written"
    VIDEO = "video"


class Sex(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Outcome(enum.StrEnum):
    TREATED_LOCALLY = "treated_locally"
    REFERRED = "referred"
    TRANSFERRED = "transferred"
    DIED = "died"
    UNKNOWN = "unknown"


class Consult(Model):
    __tablename__ = "consults"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[ConsultStatus] = mapped_column(string_enum(ConsultStatus), index=True)

    patient_ref: Mapped[str] = mapped_column(String(40))
    patient_age_years: Mapped[int | None]
    patient_age_band: Mapped[str | None] = mapped_column(String(20))
    patient_sex: Mapped[Sex] = mapped_column(string_enum(Sex))
    presenting_problem: Mapped[str] = mapped_column(Text)
    history: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text)
    specialty_id: Mapped[int] = mapped_column(ForeignKey("specialties.id"), index=True)
    urgency: Mapped[Urgency] = mapped_column(string_enum(Urgency))
    mode: Mapped[ConsultMode] = mapped_column(string_enum(ConsultMode))
    # Comma-separated BCP 47 codes the requesting clinic can read.
    languages: Mapped[str] = mapped_column(String(120))

    outcome: Mapped[Outcome | None] = mapped_column(string_enum(Outcome))
    outcome_note: Mapped[str] = mapped_column(Text, default="")
    rating: Mapped[int | None]  # 1..5, the clinician's rating of the answer
    # The close-out questions Champlain BASE asks (None: not answered).
    referral_avoided: Mapped[bool | None]  # a referral or evacuation was avoided
    course_changed: Mapped[bool | None]  # the answer changed the course of action

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now, index=True)
    # Indexed: the situation room reads a period of consults by these (and the latest change).
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # The new-consult form's one-time key: the same submission sent again (a retry after a
    # dropped connection) finds this consult instead of creating a second one.
    submission_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)

    clinic: Mapped[Clinic] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    specialist: Mapped[User | None] = relationship(foreign_keys=[specialist_id])
    specialty: Mapped[Specialty] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="consult", order_by="Attachment.id"
    )

    @property
    def reference(self) -> str:
        return f"C-{self.id:05d}"

    @property
    def language_list(self) -> list[str]:
        return [code for code in self.languages.split(",") if code]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def __repr__(self) -> str:
        return f"<Consult {self.id} {self.status}>"


class Attachment(Model):
    """A photo or document on a consult, stored on disk under a generated name."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    note_id: Mapped[int | None] = mapped_column(ForeignKey("notes.id"), index=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    original_name: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    # A small JPEG made at upload (photos only): pages show it, the full image is on demand.
    preview_name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    consult: Mapped[Consult] = relationship(back_populates="attachments")
    uploaded_by: Mapped[User] = relationship()

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


# Keyset pages of consults: each list's filter column first, then its sort key (see
# consults.services.CONSULT_SORTS), so a page is one index range scan at any table size.
Index("ix_consults_created_at_id", Consult.created_at, Consult.id)
Index("ix_consults_updated_at_id", Consult.updated_at, Consult.id)
Index("ix_consults_status_created_at_id", Consult.status, Consult.created_at, Consult.id)
Index("ix_consults_clinic_id_updated_at_id", Consult.clinic_id, Consult.updated_at, Consult.id)
Index("ix_consults_specialist_id_updated_at_id", Consult.specialist_id, Consult.updated_at,
      Consult.id)
Index("ix_consults_specialty_id_created_at_id", Consult.specialty_id, Consult.created_at,
      Consult.id)
# The load report counts the consults accepted in the last 90 days.
Index("ix_consults_accepted_at_specialist_id", Consult.accepted_at, Consult.specialist_id)
# A clinic's dashboard counts by status from the index alone (status_counts).
Index("ix_consults_clinic_id_status", Consult.clinic_id, Consult.status)
