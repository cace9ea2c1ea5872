"""Conference series, their sessions, de-identified cases, recommendations and attendance."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model


class MemberRole(enum.StrEnum):
    COORDINATOR = "coordinator"  # hub: runs the series, approves cases, corrects attendance
    SPECIALIST = "specialist"  # hub: teaches, records recommendations
    PARTICIPANT = "participant"  # a clinician (or a whole invited clinic)


HUB_ROLES = frozenset({MemberRole.COORDINATOR, MemberRole.SPECIALIST})


class CaseStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    RETURNED = "returned"


# Every change of a case's status goes through services.transition_case().
CASE_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.DRAFT: frozenset({CaseStatus.SUBMITTED}),
    CaseStatus.SUBMITTED: frozenset({CaseStatus.APPROVED, CaseStatus.RETURNED}),
    CaseStatus.RETURNED: frozenset({CaseStatus.SUBMITTED}),
    CaseStatus.APPROVED: frozenset(),
}
EDITABLE_CASE_STATUSES = frozenset({CaseStatus.DRAFT, CaseStatus.RETURNED})


class DeckStatus(enum.StrEnum):
    PREPARING = "preparing"  # uploaded; a job turns its pages into slides
    READY = "ready"  # its pages are slides
    FAILED = "failed"  # refused (unreadable, too slow, too long); no slide was kept


# Every change of a deck's status goes through services.finish_deck().
DECK_TRANSITIONS: dict[DeckStatus, frozenset[DeckStatus]] = {
    DeckStatus.PREPARING: frozenset({DeckStatus.READY, DeckStatus.FAILED}),
    DeckStatus.READY: frozenset(),
    DeckStatus.FAILED: frozenset(),
}


class AttendanceKind(enum.StrEnum):
    JOIN = "join"
    LEAVE = "leave"


class ConferenceSeries(Model):
    """A recurring conference: hub team, topic, languages, a weekly slot in the hub's zone."""

    __tablename__ = "conference_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    # Comma-separated BCP 47 codes the sessions are held in.
    languages: Mapped[str] = mapped_column(String(120), default="en")
    timezone: Mapped[str] = mapped_column(String(64))  # the hub's zone: the recurrence's
    weekday: Mapped[int]  # 0 = Monday, in the hub's zone
    start_minute: Mapped[int]  # minutes after local midnight in the hub's zone
    duration_minutes: Mapped[int] = mapped_column(default=90)
    teaching_minutes: Mapped[int] = mapped_column(default=20)
    case_slots: Mapped[int] = mapped_column(default=3)
    # Share of a session (percent) a person must attend for a certificate.
    certificate_percent: Mapped[int] = mapped_column(default=80)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    members: Mapped[list[ConferenceMember]] = relationship(
        back_populates="series", order_by="ConferenceMember.id")

    @property
    def language_list(self) -> list[str]:
        return [code for code in self.languages.split(",") if code]


class ConferenceMember(Model):
    """A person (hub or participant) or a whole invited clinic in a series."""

    __tablename__ = "conference_members"
    __table_args__ = (UniqueConstraint("series_id", "user_id", "clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("conference_series.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"), index=True)
    role: Mapped[MemberRole] = mapped_column(string_enum(MemberRole))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    series: Mapped[ConferenceSeries] = relationship(back_populates="members")


class ConferenceInvitation(Model):
    """A link bound to one person or one clinic; only the token's hash is stored."""

    __tablename__ = "conference_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("conference_series.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConferenceSession(Model):
    """One meeting of a series, generated from its recurrence; times stored in UTC."""

    __tablename__ = "conference_sessions"
    __table_args__ = (UniqueConstraint("series_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("conference_series.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    teaching_title: Mapped[str] = mapped_column(String(200), default="")
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    series: Mapped[ConferenceSeries] = relationship()

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)


class ConferenceCase(Model):
    """A de-identified summary of one consult, presented in one session's case slot."""

    __tablename__ = "conference_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("conference_sessions.id"), index=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    presenter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[CaseStatus] = mapped_column(string_enum(CaseStatus))
    age_band: Mapped[str] = mapped_column(String(20))
    sex: Mapped[str] = mapped_column(String(10))
    history: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text, default="")
    slot: Mapped[int | None]  # 1-based case slot in the session's agenda
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    session: Mapped[ConferenceSession] = relationship()
    images: Mapped[list[ConferenceCaseImage]] = relationship(order_by="ConferenceCaseImage.id")
    dismissals: Mapped[list[IdentifierDismissal]] = relationship(
        order_by="IdentifierDismissal.id")


class ConferenceCaseImage(Model):
    """A chosen consult image, re-encoded (no EXIF or other metadata) for the case."""

    __tablename__ = "conference_case_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("conference_cases.id"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))


class IdentifierDismissal(Model):
    """The presenter's word that a flagged text is not an identifier, and why."""

    __tablename__ = "conference_identifier_dismissals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("conference_cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class Recommendation(Model):
    """The hub's advice on one case; copied to the consult as a note (note_id)."""

    __tablename__ = "conference_recommendations"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("conference_cases.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    note_id: Mapped[int | None] = mapped_column(ForeignKey("notes.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class AttendanceEvent(Model):
    """A join or leave reported by the media server."""

    __tablename__ = "conference_attendance_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("conference_sessions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[AttendanceKind] = mapped_column(string_enum(AttendanceKind))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class AttendanceCorrection(Model):
    """A coordinator's correction of someone's attended minutes; the newest one counts."""

    __tablename__ = "conference_attendance_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("conference_sessions.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    minutes: Mapped[int]
    reason: Mapped[str] = mapped_column(String(500))
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class ConferenceSlide(Model):
    """A slide image a hub member uploaded for a session's room, re-encoded without metadata:
    shown full size, or as its small preview to audio-only and `low` participants."""

    __tablename__ = "conference_slides"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("conference_sessions.id"), index=True)
    position: Mapped[int]  # 1-based, in upload order
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    preview_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class ConferenceDeck(Model):
    """A PDF deck a hub member uploaded, while a job turns its pages into slides (and after:
    what became of it). Its raw file waits in the uploads store for the job, which removes
    it; a refusal keeps its sentence, in the uploader's language, for their room page."""

    __tablename__ = "conference_decks"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("conference_sessions.id"), index=True)
    original_name: Mapped[str] = mapped_column(String(200))
    # The PDF in the uploads store; None once the job is done with it.
    stored_name: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[DeckStatus] = mapped_column(string_enum(DeckStatus),
                                               default=DeckStatus.PREPARING)
    error: Mapped[str | None] = mapped_column(String(500))
    slide_count: Mapped[int] = mapped_column(default=0)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
