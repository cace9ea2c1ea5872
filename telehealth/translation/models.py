"""Translations of case notes and requests for them; the original note is never changed."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import User
    from telehealth.notes.models import Note, NoteRevision


class TranslationMethod(enum.StrEnum):
    HUMAN = "human"
    MACHINE = "machine"


class TranslationState(enum.StrEnum):
    DRAFT = "draft"
    VERIFIED = "verified"


# The only allowed change of a translation's state: a second reader checks it.
ALLOWED_TRANSITIONS: dict[TranslationState, frozenset[TranslationState]] = {
    TranslationState.DRAFT: frozenset({TranslationState.VERIFIED}),
    TranslationState.VERIFIED: frozenset(),
}


class NoteTranslation(Model):
    """One note revision's text in another language, by a person or a machine."""

    __tablename__ = "note_translations"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("note_revisions.id"))
    language: Mapped[str] = mapped_column(String(35))  # BCP 47
    text: Mapped[str] = mapped_column(Text)
    method: Mapped[TranslationMethod] = mapped_column(string_enum(TranslationMethod))
    state: Mapped[TranslationState] = mapped_column(string_enum(TranslationState))
    # For a machine translation: the person who asked the machine.
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    note: Mapped[Note] = relationship()
    revision: Mapped[NoteRevision] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    verified_by: Mapped[User | None] = relationship(foreign_keys=[verified_by_id])


class TranslationRequest(Model):
    """'This note needs translating into X': shown in the queue of volunteers who read X."""

    __tablename__ = "translation_requests"
    __table_args__ = (UniqueConstraint("note_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    language: Mapped[str] = mapped_column(String(35), index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    note: Mapped[Note] = relationship()
    requested_by: Mapped[User] = relationship()

    @property
    def is_open(self) -> bool:
        return self.fulfilled_at is None
