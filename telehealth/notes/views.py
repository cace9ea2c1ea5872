"""Adding and amending case notes."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from telehealth import signals
from telehealth.boundary import on_refusal
from telehealth.consults import services as consults
from telehealth.consults.models import Consult
from telehealth.consults.pages import detail_context
from telehealth.errors import NotFound
from telehealth.extensions import db
from telehealth.notes import services
from telehealth.notes.forms import AmendForm, NoteForm
from telehealth.notes.models import Note

bp = Blueprint("notes", __name__, template_folder="templates")


def _consult_page(consult: Consult, user: Any) -> dict[str, Any]:
    notes = services.notes_for(consult)
    # Whether the assigned specialist wrote yet: the clinic's hint about closing.
    return {"notes": notes, "note_form": NoteForm(), "amend_form": AmendForm(),
            "specialist_wrote": any(note.author_id == consult.specialist_id for note in notes)}


def connect_signals() -> None:
    """The consult page shows the thread of notes and the forms to write one."""
    signals.consult_page.connect(_consult_page)
logger = logging.getLogger(__name__)
@bp.route("/consults/<int:consult_id>/notes", methods=["POST"])
@login_required
def add(consult_id: int) -> Any:
    consult = consults.get_visible_consult(current_user, consult_id)
    form = NoteForm()
    if form.validate_on_submit():
        files = [consults.Upload(f.stream, f.filename or "") for f in form.attachments.data or []
                 if f and f.filename]
        # Refused or not saved: the author's text comes back in the form, and nothing
        # half-saved stays behind (the rollback also deletes the files this note stored).
        on_refusal(lambda: render_template("consults/detail.html", **detail_context(
            consults.get_visible_consult(current_user, consult_id), note_form=form)))
        services.add_note(consult, current_user, form.body.data or "", files,
                          answer=bool(form.answer.data), language=form.language.data or None)
        flash(_("Your note is saved."), "success")
        return redirect(url_for("consults.detail", consult_id=consult_id, _anchor="notes"))
    flash(_("Write something before saving the note."), "error")
    return render_template("consults/detail.html",
                           **detail_context(consult, note_form=form)), 400


@bp.route("/notes/<int:note_id>/amend", methods=["POST"])
@login_required
def amend(note_id: int) -> Any:
    note = db.session.get(Note, note_id)
    if note is None:
        raise NotFound(_("No such note."))
    consult = consults.get_visible_consult(current_user, note.consult_id)
    form = AmendForm()
    if not form.validate_on_submit():
        flash(_("Write the amended text."), "error")
        return redirect(url_for("consults.detail", consult_id=consult.id, _anchor="notes"))
    services.amend_note(note, current_user, form.body.data or "")
    flash(_("The note is amended; the earlier text stays visible."), "success")
    return redirect(url_for("consults.detail", consult_id=consult.id,
                            _anchor=f"note-{note.id}"))
