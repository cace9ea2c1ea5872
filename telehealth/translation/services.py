"""Note languages, translations and their verification, requests and the translation queue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import joinedload

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.consults.models import Consult
from telehealth.consults.services import visible_consults_clause
from telehealth.db_types import known
from telehealth.errors import Conflict, InvalidInput, PermissionDenied, ServiceError
from telehealth.extensions import db
from telehealth.i18n.services import check_language
from telehealth.notes.models import Note
from telehealth.translation import machine
from telehealth.translation.models import (
    ALLOWED_TRANSITIONS,
    NoteTranslation,
    TranslationMethod,
    TranslationRequest,
    TranslationState,
)

MAX_TRANSLATION_LENGTH = 20_000


class TranslationUnavailable(ServiceError):
    status_code = 503


def primary(code: str | None) -> str:
    """'pt-BR' -> 'pt': readers and catalogs are matched on the primary language subtag."""
    return (code or "").split("-")[0].lower()


def note_languages() -> list[str]:
    return list(current_app.config["LANGUAGES"])


def knows(user: User, language: str | None) -> bool:
    """The user reads and writes the language (from their profile's languages)."""
    return bool(language) and primary(language) in {primary(c) for c in user.language_codes}


# ---------------------------------------------------------------- the note's own language


def set_note_language(note: Note, user: User, language: str) -> None:
    """The author corrects the recorded language of their note."""
    if note.author_id != user.id:
        raise PermissionDenied(_("Only the author can change the language of a note."))
    note.language = check_language(language)
    note.language_detected = False
    record("note.language", consult_id=note.consult_id, obj=note, language=language)


# ---------------------------------------------------------------- who may do what


def can_see_consult(user: User, consult_id: int) -> bool:
    return db.session.scalar(
        select(Consult.id).where(Consult.id == consult_id, visible_consults_clause(user))
    ) is not None


def open_request(note: Note, language: str) -> TranslationRequest | None:
    return db.session.scalar(select(TranslationRequest).where(
        TranslationRequest.note_id == note.id, TranslationRequest.language == language,
        TranslationRequest.fulfilled_at.is_(None)))


def can_read_note(user: User, note: Note) -> bool:
    """Those who see the consult; translators for a note waiting in their queue."""
    if can_see_consult(user, note.consult_id):
        return True
    return user.is_translator and knows(user, note.language) and any(
        knows(user, r.language) for r in open_requests_for(note))


def can_translate(user: User, note: Note, language: str) -> bool:
    """Someone who reads the note and knows both languages."""
    return (primary(language) != primary(note.language) and knows(user, note.language)
            and knows(user, language) and can_read_note(user, note))


# ---------------------------------------------------------------- translations


def _check_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise InvalidInput(_("The translation is empty."))
    if len(text) > MAX_TRANSLATION_LENGTH:
        raise InvalidInput(_("The translation is longer than %(n)d characters.",
                             n=MAX_TRANSLATION_LENGTH))
    return text


def _fulfil_requests(note: Note, language: str) -> None:
    for request in open_requests_for(note):
        if primary(request.language) == primary(language):
            request.fulfilled_at = clock.now()


def add_translation(note: Note, user: User, language: str, text: str) -> NoteTranslation:
    """A person's translation of the note's current text; a draft until someone verifies it."""
    check_language(language)
    if note.language is None:
        raise InvalidInput(_("Set the language of the note first."))
    if not can_translate(user, note, language):
        raise PermissionDenied(_("Only someone on the case who knows both languages can "
                                 "translate this note."))
    translation = NoteTranslation(
        note_id=note.id, revision_id=note.current.id, language=language,
        text=_check_text(text), method=TranslationMethod.HUMAN, state=TranslationState.DRAFT,
        created_by_id=user.id,
    )
    db.session.add(translation)
    _fulfil_requests(note, language)
    db.session.flush()
    record("note.translated", consult_id=note.consult_id, obj=translation, language=language,
           method="human")
    return translation


def check_machine_translation(note: Note, user: User, language: str) -> machine.MachineTranslator:
    """Whether this person may have the machine translate this note: the provider, or raise."""
    check_language(language)
    provider = machine.get_provider()
    if provider is None:
        raise TranslationUnavailable(_("Machine translation is not set up here."))
    if not can_read_note(user, note) or note.language is None \
            or primary(note.language) == primary(language):
        raise PermissionDenied(_("You cannot translate this note."))
    return provider


def store_machine_translation(note_id: int, user_id: int, language: str) -> int | None:
    """The job behind a request for machine translation (it may wait on the service)."""
    note, user = db.session.get(Note, note_id), db.session.get(User, user_id)
    if note is None or user is None:
        return None
    return machine_translate(note, user, language).id


def machine_translate(note: Note, user: User, language: str) -> NoteTranslation:
    """Ask the configured machine for a translation; it stays marked unverified."""
    provider = check_machine_translation(note, user, language)
    try:
        # check_machine_translation refused a note without a language.
        text = provider.translate(note.current.body, note.language or "", language)
    except machine.MachineTranslationError as exc:
        raise TranslationUnavailable(
            _("The machine translation service did not answer. Try again later.")) from exc
    translation = NoteTranslation(
        note_id=note.id, revision_id=note.current.id, language=language,
        text=_check_text(text), method=TranslationMethod.MACHINE,
        state=TranslationState.DRAFT, created_by_id=user.id,
    )
    db.session.add(translation)
    db.session.flush()
    record("note.translated", consult_id=note.consult_id, obj=translation, language=language,
           method="machine")
    return translation


def verify_translation(translation: NoteTranslation, user: User) -> None:
    """A second person who knows both languages confirms the translation."""
    note = translation.note
    if not can_translate(user, note, translation.language):
        raise PermissionDenied(_("Only someone on the case who knows both languages can "
                                 "verify this translation."))
    if translation.method == TranslationMethod.HUMAN and translation.created_by_id == user.id:
        raise PermissionDenied(_("Someone other than the translator must verify it."))
    if TranslationState.VERIFIED not in ALLOWED_TRANSITIONS[known(translation.state)]:
        raise Conflict(_("This translation is already verified."))
    translation.state = TranslationState.VERIFIED
    translation.verified_by_id = user.id
    translation.verified_at = clock.now()
    _fulfil_requests(note, translation.language)
    record("note.translation_verified", consult_id=note.consult_id, obj=translation)


_PREFERENCE = {
    (TranslationMethod.HUMAN, TranslationState.VERIFIED): 0,
    (TranslationMethod.MACHINE, TranslationState.VERIFIED): 1,
    (TranslationMethod.HUMAN, TranslationState.DRAFT): 2,
    (TranslationMethod.MACHINE, TranslationState.DRAFT): 3,
}


def translations_of(note: Note) -> list[NoteTranslation]:
    return list(db.session.scalars(select(NoteTranslation).where(
        NoteTranslation.note_id == note.id).order_by(NoteTranslation.created_at.desc(),
                                                     NoteTranslation.id.desc())))


def best_translation(note: Note, language: str) -> NoteTranslation | None:
    """The most trustworthy translation of the current text: verified first, people first."""
    candidates = [t for t in translations_of(note) if primary(t.language) == primary(language)
                  and t.revision_id == note.current.id]
    if not candidates:
        return None
    return min(candidates, key=lambda t: _PREFERENCE[(t.method, t.state)])


# ---------------------------------------------------------------- requests and the queue


def open_requests_for(note: Note) -> list[TranslationRequest]:
    return list(db.session.scalars(select(TranslationRequest).where(
        TranslationRequest.note_id == note.id, TranslationRequest.fulfilled_at.is_(None))))


def request_translation(note: Note, user: User, language: str) -> TranslationRequest:
    """Mark the note as needing a translation into a language (idempotent while open)."""
    check_language(language)
    if not can_see_consult(user, note.consult_id):
        raise PermissionDenied(_("You cannot ask for a translation of this note."))
    if primary(language) == primary(note.language):
        raise InvalidInput(_("The note is already in this language."))
    existing = db.session.scalar(select(TranslationRequest).where(
        TranslationRequest.note_id == note.id, TranslationRequest.language == language))
    if existing is not None:
        existing.fulfilled_at = None  # asked again: back in the queue
        return existing
    request = TranslationRequest(note_id=note.id, language=language, requested_by_id=user.id)
    db.session.add(request)
    db.session.flush()
    record("note.translation_requested", consult_id=note.consult_id, obj=request,
           language=language)
    return request


def _in_languages(column: Any, codes: set[str]) -> Any:
    """SQL for primary(column) in codes: 'pt' matches 'pt' and 'pt-BR', in any case."""
    if not codes:
        return false()
    lowered = func.lower(column)
    return or_(*(or_(lowered == code, lowered.like(f"{code}-%")) for code in sorted(codes)))


def _queue_query(user: User) -> Any:
    codes = {primary(c) for c in user.language_codes if primary(c)}
    return (select(TranslationRequest).join(Note, Note.id == TranslationRequest.note_id)
            .where(TranslationRequest.fulfilled_at.is_(None),
                   _in_languages(TranslationRequest.language, codes),
                   _in_languages(Note.language, codes)))


def may_use_queue(user: User) -> bool:
    return user.is_translator or user.role in (Role.COORDINATOR, Role.ADMIN)


def queue_for(user: User) -> list[TranslationRequest]:
    """Open requests this volunteer can do: into a language they read, from one they read."""
    if not may_use_queue(user):
        return []
    # The notes, their authors and texts come with the requests: the page shows them all.
    return list(db.session.scalars(_queue_query(user).options(
        joinedload(TranslationRequest.note).joinedload(Note.author),
        joinedload(TranslationRequest.note).selectinload(Note.revisions))
        .order_by(TranslationRequest.created_at, TranslationRequest.id)).unique())


def queue_size(user: User) -> int:
    """How many requests queue_for() would list, counted in SQL (every page's menu shows it)."""
    if not may_use_queue(user):
        return 0
    return db.session.scalar(select(func.count()).select_from(
        _queue_query(user).subquery())) or 0


def set_translator(target: User, by: User, granted: bool) -> None:
    """Coordinators and administrators grant or withdraw the translator flag."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied(_("Only coordinators can grant the translator role."))
    target.is_translator = granted
    record("user.translator", obj=target, granted=granted)


# ---------------------------------------------------------------- what a reader sees


@dataclass
class NoteView:
    """One note as one reader sees it."""

    note: Note
    reader_language: str
    translation: NoteTranslation | None
    requested: bool
    can_request: bool
    can_translate: bool
    can_verify: bool
    can_machine_translate: bool
    can_correct_language: bool
    # Languages anyone on the case may mark the note as needing (beyond the reader's own).
    requestable_languages: list[str]

    @property
    def in_reader_language(self) -> bool:
        return primary(self.note.language) == primary(self.reader_language)


@dataclass
class ThreadTranslations:
    """What the consult page needs to decide every note's view, read once for the thread:
    the notes' translations (with who made and verified them), their open requests, and
    whether the reader sees each consult."""

    translations: dict[int, list[NoteTranslation]] = field(default_factory=dict)
    open_requests: dict[int, list[TranslationRequest]] = field(default_factory=dict)
    sees_consult: dict[int, bool] = field(default_factory=dict)


def thread_translations(consult_ids: Iterable[int], reader: User) -> ThreadTranslations:
    """Three statements for the notes of these consults, however many notes they have."""
    ids = sorted(set(consult_ids))
    thread = ThreadTranslations(translations=defaultdict(list), open_requests=defaultdict(list))
    for translation in db.session.scalars(
            select(NoteTranslation).join(Note, Note.id == NoteTranslation.note_id)
            .where(Note.consult_id.in_(ids))
            .options(joinedload(NoteTranslation.created_by),
                     joinedload(NoteTranslation.verified_by))
            .order_by(NoteTranslation.created_at.desc(), NoteTranslation.id.desc())):
        thread.translations[translation.note_id].append(translation)
    for request in db.session.scalars(
            select(TranslationRequest).join(Note, Note.id == TranslationRequest.note_id)
            .where(Note.consult_id.in_(ids), TranslationRequest.fulfilled_at.is_(None))
            .order_by(TranslationRequest.id)):
        thread.open_requests[request.note_id].append(request)
    visible = set(db.session.scalars(select(Consult.id).where(
        Consult.id.in_(ids), visible_consults_clause(reader))))
    thread.sees_consult = {consult_id: consult_id in visible for consult_id in ids}
    return thread


def _best_of(note: Note, translations: list[NoteTranslation],
             language: str) -> NoteTranslation | None:
    candidates = [t for t in translations if primary(t.language) == primary(language)
                  and t.revision_id == note.current.id]
    if not candidates:
        return None
    return min(candidates, key=lambda t: _PREFERENCE[(t.method, t.state)])


def note_view(note: Note, reader: User, reader_language: str,
              thread: ThreadTranslations | None = None) -> NoteView:
    """Decide what the reader sees of a note: original, or their language's translation.

    `thread` holds what was read for the note's whole thread (thread_translations); without
    it, it is read now."""
    if thread is None or note.consult_id not in thread.sees_consult:
        thread = thread_translations([note.consult_id], reader)
    requests = thread.open_requests.get(note.id, [])
    same = note.language is None or primary(note.language) == primary(reader_language)
    translation = None if same else _best_of(note, thread.translations.get(note.id, []),
                                             reader_language)
    # open_request(): an open request in exactly the reader's language.
    requested = not same and any(r.language == reader_language for r in requests)
    # can_translate() over what was read: both languages known, and the note readable.
    readable = thread.sees_consult[note.consult_id] or (
        reader.is_translator and knows(reader, note.language)
        and any(knows(reader, r.language) for r in requests))
    translate_ok = not same and reader_language in note_languages() \
        and primary(reader_language) != primary(note.language) \
        and knows(reader, note.language) and knows(reader, reader_language) and readable
    requested_languages = {primary(r.language) for r in requests}
    return NoteView(
        note=note,
        reader_language=reader_language,
        translation=translation,
        requested=requested,
        can_request=not same and translation is None and not requested
        and reader_language in note_languages(),
        can_translate=translate_ok and (translation is None
                                        or translation.method == TranslationMethod.MACHINE),
        can_verify=translation is not None and translation.state == TranslationState.DRAFT
        and translate_ok and not (translation.method == TranslationMethod.HUMAN
                                  and translation.created_by_id == reader.id),
        can_machine_translate=not same and translation is None
        and machine.get_provider() is not None and reader_language in note_languages(),
        can_correct_language=note.author_id == reader.id,
        requestable_languages=[
            code for code in note_languages()
            if note.language and primary(code) != primary(note.language)
            and code not in requested_languages
        ],
    )
