"""Writing and amending case notes; the specialist's answer is a note too."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from telehealth import clock, uploads
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.consults.services import (
    Upload,
    add_attachment,
    can_write_notes,
    consult_url,
    transition,
)
from telehealth.errors import InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n.detection import detect_language
from telehealth.i18n.services import check_language
from telehealth.notes.models import Note, NoteKind, NoteRevision
from telehealth.notifications.services import in_language_of, notify

MAX_NOTE_LENGTH = 20_000


def notify_new_note(consult: Consult, author: User) -> None:
    """Tell the other people on a consult (requester, assigned specialist) about a new note."""
    people = {consult.created_by_id, consult.specialist_id} - {author.id, None}
    for person in db.session.scalars(select(User).where(User.id.in_(people))):
        with in_language_of(person):
            notify(person, "note.new",
                   {"consult_id": consult.id, "reference": consult.reference,
                    "specialty": consult.specialty.name,
                    "url": consult_url(consult, external=False), "author": author.name},
                   subject=_("New note on consult %(ref)s", ref=consult.reference),
                   body=_("%(name)s wrote on consult %(ref)s: %(url)s", name=author.name,
                          ref=consult.reference, url=consult_url(consult)))


def _check_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise InvalidInput(_("The note is empty."))
    if len(body) > MAX_NOTE_LENGTH:
        raise InvalidInput(
            _("The note is longer than %(n)d characters.", n=MAX_NOTE_LENGTH)
        )
    return body


def notes_for(consult: Consult) -> list[Note]:
    return list(
        db.session.scalars(
            # The thread's revisions, authors and files in a fixed number of statements.
            select(Note).where(Note.consult_id == consult.id).order_by(Note.created_at, Note.id)
            .options(selectinload(Note.revisions).joinedload(NoteRevision.author),
                     joinedload(Note.author), selectinload(Note.attachments))
        )
    )


def language_for_new_note(body: str, chosen: str | None) -> tuple[str, bool]:
    """The author's choice, else detected: (BCP 47 code, detected?)."""
    if chosen:
        return check_language(chosen), False
    return detect_language(body), True


def add_note(
    consult: Consult, author: User, body: str, files: list[Upload] | None = None,
    answer: bool = False, language: str | None = None,
) -> Note:
    """Add a note (with attachments) to the thread; an answer moves the consult to answered."""
    if not can_write_notes(author, consult):
        raise PermissionDenied(_("You cannot write on this consult."))
    body = _check_body(body)
    checked = [uploads.check_upload(f.stream, f.filename) for f in files or []]
    if answer and not (author.role == Role.SPECIALIST and consult.specialist_id == author.id):
        raise PermissionDenied(_("Only the assigned specialist can answer."))
    note = write_note(consult, author, body, NoteKind.ANSWER if answer else NoteKind.NOTE,
                      language)
    for item in checked:
        add_attachment(consult, author, item, note_id=note.id)
    if answer and consult.status == ConsultStatus.ACCEPTED:
        transition(consult, ConsultStatus.ANSWERED, answered_at=clock.now())
    return note


def write_note(consult: Consult, author: User, body: str, kind: NoteKind,
               language: str | None = None) -> Note:
    """Store a note (language detected, audited, notified) once the caller checked access.

    add_note() checks that the author is on the case; a case conference's hub, which is not,
    writes its recommendations back through here (telehealth.conferences).
    """
    body = _check_body(body)
    code, detected = language_for_new_note(body, language)
    note = Note(consult_id=consult.id, author=author, kind=kind, language=code,
                language_detected=detected)
    db.session.add(note)
    db.session.flush()
    db.session.add(NoteRevision(note_id=note.id, number=1, body=body, author=author))
    db.session.flush()
    record("note.created", consult_id=consult.id, obj=note, kind=note.kind.value)
    notify_new_note(consult, author)
    return note


def amend_note(note: Note, author: User, body: str) -> NoteRevision:
    """Add a new revision of one's own note; earlier text stays visible."""
    consult = db.session.get(Consult, note.consult_id)
    if consult is None:
        raise NotFound(_("No such consult."))
    if note.author_id != author.id or not can_write_notes(author, consult):
        raise PermissionDenied(_("Only the author can amend a note, while the case is open."))
    body = _check_body(body)
    if body == note.current.body:
        raise InvalidInput(_("The amended text is the same as the current one."))
    number = (
        db.session.scalar(select(func.max(NoteRevision.number)).where(
            NoteRevision.note_id == note.id)) or 0
    ) + 1
    revision = NoteRevision(note_id=note.id, number=number, body=body, author=author)
    db.session.add(revision)
    db.session.flush()
    db.session.refresh(note)
    record("note.amended", consult_id=consult.id, obj=note, revision=number)
    return revision
