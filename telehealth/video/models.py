"""Video sessions on a case: who joined and left when, invites for guests, in-call chat."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import db

if TYPE_CHECKING:
    from telehealth.accounts.models import User

    # mypy cannot see through Flask-SQLAlchemy's generated model class: type against the
    # declarative base it is built on.
    from telehealth.extensions import Base as Model
else:
    Model = db.Model


class ProposalStatus(enum.StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"


# A time is agreed when the other side accepts it; the side that proposed it can withdraw it,
# agreed or not.
PROPOSAL_TRANSITIONS: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    ProposalStatus.PROPOSED: frozenset({ProposalStatus.ACCEPTED, ProposalStatus.WITHDRAWN}),
    ProposalStatus.ACCEPTED: frozenset({ProposalStatus.WITHDRAWN}),
    ProposalStatus.WITHDRAWN: frozenset(),
}


class VideoSession(Model):
    """One call on a consult, from the first join to the last leave."""

    __tablename__ = "video_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    profile: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    participations: Mapped[list[VideoParticipation]] = relationship(
        back_populates="session", order_by="VideoParticipation.id"
    )
    messages: Mapped[list[CallMessage]] = relationship(order_by="CallMessage.id")

    @property
    def duration_seconds(self) -> int | None:
        if self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds())


class VideoParticipation(Model):
    """One person's stay in a call (a rejoin after a drop is a new row)."""

    __tablename__ = "video_participations"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("video_sessions.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    invite_id: Mapped[int | None] = mapped_column(ForeignKey("video_invites.id"))
    display_name: Mapped[str] = mapped_column(String(120))
    profile: Mapped[str] = mapped_column(String(20))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    left_reason: Mapped[str] = mapped_column(String(20), default="")

    session: Mapped[VideoSession] = relationship(back_populates="participations")
    user: Mapped[User | None] = relationship()

    @property
    def participant_id(self) -> str:
        """The id the media engine knows this person by ("u<user>" or "g<invite>")."""
        return f"u{self.user_id}" if self.user_id is not None else f"g{self.invite_id}"


class VideoInvite(Model):
    """A one-time link that lets a guest (interpreter, second opinion) into one consult's call."""

    __tablename__ = "video_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    guest_name: Mapped[str] = mapped_column(String(120))
    # Only the SHA-256 of the token is kept: a database leak yields no working link.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CallMessage(Model):
    """A chat line written during a call, kept on the case."""

    __tablename__ = "call_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("video_sessions.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)


class CallProposal(Model):
    """A proposed call time on a consult; each side reads it in their own time zone."""

    __tablename__ = "call_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    proposed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    status: Mapped[ProposalStatus] = mapped_column(
        string_enum(ProposalStatus),
        default=ProposalStatus.PROPOSED,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    proposed_by: Mapped[User] = relationship()
