"""Pages and actions for translating case notes, the queue, and granting the translator role."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from telehealth import signals
from telehealth.accounts.models import Role, User
from telehealth.consults.models import Consult
from telehealth.errors import InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.notes.models import Note
from telehealth.translation import services
from telehealth.translation.forms import LanguageOnlyForm, NoteLanguageForm, TranslationForm
from telehealth.translation.models import NoteTranslation, TranslationRequest
from telehealth.validation import database_id

bp = Blueprint("translation", __name__, template_folder="templates")


def _readable_note(note_id: int) -> Note:
    note = db.session.get(Note, note_id)
    if note is None or not services.can_read_note(current_user, note):
        raise NotFound(_("No such note, or you do not have access to it."))
    return note


def _back_to(note: Note) -> Response:
    """To the note in its consult, or to the queue for a translator who is not on the case."""
    if services.can_see_consult(current_user, note.consult_id):
        return redirect(url_for("consults.detail", consult_id=note.consult_id,
                                _anchor=f"note-{note.id}"))
    return redirect(url_for("translation.queue"))


def _form_errors(form: Any) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@bp.route("/notes/<int:note_id>/language", methods=["POST"])
@login_required
def correct_language(note_id: int) -> Response:
    note = _readable_note(note_id)
    form = NoteLanguageForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Choose one of the listed languages."))
    services.set_note_language(note, current_user, form.language.data or "")
    flash(_("The language of the note is corrected."), "success")
    return _back_to(note)


@bp.route("/notes/<int:note_id>/translations", methods=["POST"])
@login_required
def add(note_id: int) -> Any:
    note = _readable_note(note_id)
    form = TranslationForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Write the translation and choose its language.") + " "
                           + _form_errors(form))
    services.add_translation(note, current_user, form.language.data or "", form.text.data or "")
    flash(_("Your translation is saved. Someone else who knows both languages can verify it."),
          "success")
    return _back_to(note)


@bp.route("/translations/<int:translation_id>/verify", methods=["POST"])
@login_required
def verify(translation_id: int) -> Response:
    translation = db.session.get(NoteTranslation, translation_id)
    if translation is None or not services.can_read_note(current_user, translation.note):
        raise NotFound(_("No such translation."))
    services.verify_translation(translation, current_user)
    flash(_("The translation is marked as verified."), "success")
    return _back_to(translation.note)


def _chosen_language() -> str:
    form = LanguageOnlyForm()
    if not form.validate_on_submit():
        raise InvalidInput(_("Choose one of the listed languages."))
    return form.language.data or ""


@bp.route("/notes/<int:note_id>/translation-requests", methods=["POST"])
@login_required
def ask(note_id: int) -> Response:
    note = _readable_note(note_id)
    services.request_translation(note, current_user, _chosen_language())
    flash(_("Asked for a translation. Volunteers who read both languages will see it."),
          "success")
    return _back_to(note)


@bp.route("/notes/<int:note_id>/machine-translation", methods=["POST"])
@login_required
def machine(note_id: int) -> Response:
    note = _readable_note(note_id)
    language = _chosen_language()
    services.check_machine_translation(note, current_user, language)
    # The service may take its time: a job asks it, the page does not wait.
    signals.machine_translation_requested.send(note.id, user_id=current_user.id,
                                               language=language)
    flash(_("Machine translation requested: it appears on the note in a moment. It is "
            "unverified: check anything that matters."), "success")
    return _back_to(note)


@bp.route("/translations/queue")
@login_required
def queue() -> str:
    requests = services.queue_for(current_user)
    return render_template("translation/queue.html", requests=requests,
                           form=TranslationForm(), reader_language=str(get_locale() or "en"))


@bp.route("/translators", methods=["GET", "POST"])
@login_required
def translators() -> Any:
    if current_user.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied(_("Only coordinators can grant the translator role."))
    if request.method == "POST":
        target = db.session.get(User, request.form.get("user_id", type=database_id) or 0)
        if target is None:
            raise NotFound(_("No such user."))
        granted = request.form.get("granted") == "1"
        services.set_translator(target, current_user, granted)
        flash(_("%(name)s is now a translator.", name=target.name) if granted
              else _("%(name)s is no longer a translator.", name=target.name), "success")
        return redirect(url_for("translation.translators"))
    people = db.session.scalars(select(User).where(User.active.is_(True))
                                .order_by(User.name)).all()
    return render_template("translation/translators.html", people=people)


def _consult_page(consult: Consult, user: Any) -> dict[str, Any]:
    # The translations and open requests of the whole thread, read once for the page: each
    # note's view then costs no statement, however many notes the consult has.
    return {"note_thread": services.thread_translations([consult.id], user)}


def connect_signals() -> None:
    """The consult page shows each note in the reader's language."""
    signals.consult_page.connect(_consult_page)


@bp.app_context_processor
def note_view_context() -> dict[str, Any]:
    def note_view(note: Note, thread: services.ThreadTranslations | None = None
                  ) -> services.NoteView:
        return services.note_view(note, current_user, str(get_locale() or "en"), thread)

    def queue_size() -> int:
        if not current_user.is_authenticated:
            return 0
        return services.queue_size(current_user)

    return {
        "note_view": note_view,
        "translation_queue_size": queue_size,
        "translation_form": TranslationForm,
        "note_language_form": NoteLanguageForm,
        "language_only_form": LanguageOnlyForm,
        "TranslationRequest": TranslationRequest,
    }
