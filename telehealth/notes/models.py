"""Case notes: a thread per consult, amended by new revisions, never edited in place."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telehealth import clock
from telehealth.db_types import UTCDateTime, string_enum
from telehealth.extensions import Model

if TYPE_CHECKING:
    from telehealth.accounts.models import User
    from telehealth.consults.models import Attachment


class NoteKind(enum.StrEnum):
    NOTE = "note"
    ANSWER = "answer"  # the specialist's written answer to the clinician's question


class Note(Model):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[NoteKind] = mapped_column(string_enum(NoteKind))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    # BCP 47 code of the text; detected when the author did not say (telehealth.translation).
    language: Mapped[str | None] = mapped_column(String(35))
    language_detected: Mapped[bool] = mapped_column(default=False, server_default=false())

    author: Mapped[User] = relationship()
    revisions: Mapped[list[NoteRevision]] = relationship(
        back_populates="note", order_by="NoteRevision.number"
    )
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")

    @property
    def current(self) -> NoteRevision:
        return self.revisions[-1]

    @property
    def is_amended(self) -> bool:
        return len(self.revisions) > 1


class NoteRevision(Model):
    """One version of a note's text; the newest is current, the older stay readable."""

    __tablename__ = "note_revisions"
    __table_args__ = (UniqueConstraint("note_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    number: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    note: Mapped[Note] = relationship(back_populates="revisions")
    author: Mapped[User] = relationship()
