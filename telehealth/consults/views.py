"""Consult pages and the small JSON API over the same services."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.wrappers import Response

from telehealth import signals, uploads
from telehealth.accounts.models import Role, Specialty
from telehealth.audit.services import record
from telehealth.boundary import on_refusal
from telehealth.consults import services
from telehealth.consults.forms import CancelForm, CloseForm, ConsultForm, age_band_label
from telehealth.consults.models import Consult, ConsultMode, ConsultStatus, Outcome, Sex, Urgency
from telehealth.consults.pages import detail_context
from telehealth.errors import InvalidInput, NotFound, PermissionDenied, Superseded
from telehealth.extensions import db
from telehealth.pagination import page_size_from_request
from telehealth.security.headers import cache_privately
from telehealth.validation import validated

bp = Blueprint("consults", __name__, template_folder="templates")


@bp.app_context_processor
def consult_labels() -> dict[str, Any]:
    """Every page may name a consult's status, outcome, urgency, mode or patient's sex."""
    return {
        "status_label": services.status_label,
        "outcome_label": services.outcome_label,
        "sex_label": services.sex_label,
        "urgency_label": services.urgency_label,
        "mode_label": services.mode_label,
        "age_band_label": age_band_label,
    }


def _specialty_choices() -> list[tuple[str, str]]:
    return [(str(s.id), s.name) for s in db.session.scalars(select(Specialty).order_by(
        Specialty.name))]


@bp.route("/consults/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    if current_user.role != Role.CLINICIAN:
        raise PermissionDenied(_("Only a clinic's clinicians can request consults."))
    form = ConsultForm()
    form.specialty.choices = _specialty_choices()
    if request.method == "GET" and current_user.clinic:
        form.languages.data = current_user.clinic.language_list
    if form.validate_on_submit():
        specialty = db.session.get(Specialty, int(form.specialty.data))
        data = services.ConsultInput(
            patient_ref=form.patient_ref.data or "",
            patient_age_years=form.patient_age_years.data,
            patient_age_band=form.patient_age_band.data or None,
            patient_sex=Sex(form.patient_sex.data),
            presenting_problem=form.presenting_problem.data or "",
            history=form.history.data or "",
            question=form.question.data or "",
            specialty=specialty,  # type: ignore[arg-type]  # choices guarantee it exists
            urgency=Urgency(form.urgency.data),
            mode=ConsultMode(form.mode.data),
            languages=list(form.languages.data or []),
        )
        files = [services.Upload(f.stream, f.filename or "") for f in form.attachments.data or []
                 if f and f.filename]
        on_refusal(lambda: render_template("consults/new.html", form=form))
        key = form.submission_key.data or None
        try:
            consult = services.create_consult(current_user, data, files,
                                              submit=bool(form.submit.data), submission_key=key)
            db.session.flush()
        except IntegrityError:  # the same submission, arriving twice at the same moment
            db.session.rollback()
            consult = services.consult_by_submission(current_user, key)  # type: ignore[assignment]
            if consult is None:
                raise
        if consult.status == ConsultStatus.DRAFT:
            flash(_("The consult is saved as a draft."), "success")
        else:
            flash(_("The consult has been sent to specialists."), "success")
        return redirect(url_for("consults.detail", consult_id=consult.id))
    status = 400 if form.is_submitted() else 200
    return render_template("consults/new.html", form=form), status


# What the consult page reads of the consult, loaded with it: one statement (and one for the
# files) instead of a lazy load for each while the template renders.
DETAIL_LOADS = (joinedload(Consult.specialty), joinedload(Consult.clinic),
                joinedload(Consult.created_by), joinedload(Consult.specialist),
                selectinload(Consult.attachments))


@bp.route("/consults/<int:consult_id>")
@login_required
def detail(consult_id: int) -> Any:
    consult = services.get_visible_consult(current_user, consult_id, DETAIL_LOADS)
    record("consult.viewed", consult_id=consult.id, obj=consult)
    return render_template("consults/detail.html", **detail_context(consult))


def _yes_no(payload: dict[str, Any], key: str) -> bool | None:
    """A survey answer: yes/no (or true/false from JSON); absent or empty is no answer."""
    value = payload.get(key)
    if value in (None, ""):
        return None
    if value in (True, "yes", "true"):
        return True
    if value in (False, "no", "false"):
        return False
    raise InvalidInput(_("Answer the survey questions with yes or no."))


def _act(consult_id: int, action: str, payload: dict[str, Any]) -> Consult:
    """Run one consult action for the current user; raises ServiceError when refused."""
    try:
        consult = services.get_visible_consult(current_user, consult_id)
    except NotFound:
        # The winner's accept withdrew this specialist's offer, which hid the consult: the
        # feature that hid it says why (matching: "already taken").
        for error in signals.values_from(signals.consult_hidden, consult_id,
                                         user=current_user, action=action):
            raise error from None
        raise
    # accept and decline belong to matching, which adds them through the signal.
    added = {name: run for actions in signals.values_from(signals.consult_actions)
             for name, run in actions.items()}
    if action == "submit":
        services.submit_consult(consult, current_user)
    elif action in added:
        added[action](consult, current_user)
    elif action == "cancel":
        cancel = validated(CancelForm, payload)
        services.cancel_consult(consult, current_user, cancel.reason.data or "")
    elif action == "close":
        # JSON may answer the survey with true/false; the form's choices are yes/no.
        payload = {**payload, **{key: {True: "yes", False: "no"}.get(value, value)
                                 for key, value in payload.items()
                                 if key in ("referral_avoided", "course_changed")
                                 and isinstance(value, bool)}}
        form = validated(CloseForm, payload)  # the page's rules: choices, lengths
        services.close_consult(consult, current_user, Outcome(form.outcome.data),
                               form.outcome_note.data or "",
                               int(form.rating.data) if form.rating.data else None,
                               _yes_no(payload, "referral_avoided"),
                               _yes_no(payload, "course_changed"))
    else:
        raise InvalidInput(_("Unknown action."))
    return consult


ACTION_MESSAGES = {
    "submit": _l("The consult has been sent to specialists."),
    "accept": _l("You have taken this consult."),
    "decline": _l("You declined this consult."),
    "cancel": _l("The consult is cancelled."),
    "close": _l("The consult is closed. Thank you for telling the specialist what happened."),
}


@bp.route("/consults/<int:consult_id>/<any(submit,accept,decline,cancel):action>",
          methods=["POST"])
@login_required
def act(consult_id: int, action: str) -> Response:
    try:
        _act(consult_id, action, request.form.to_dict())
    except Superseded as exc:
        # Lost the race: nothing to do on that consult any more, back to what is left.
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("main.dashboard"))
    flash(str(ACTION_MESSAGES[action]), "success")
    if action == "decline":
        return redirect(url_for("main.dashboard"))
    return redirect(url_for("consults.detail", consult_id=consult_id))


@bp.route("/consults/<int:consult_id>/close", methods=["POST"])
@login_required
def close(consult_id: int) -> Any:
    consult = services.get_visible_consult(current_user, consult_id)
    form = CloseForm()
    if not form.validate_on_submit():
        flash(_("Choose an outcome."), "error")
        return render_template("consults/detail.html",
                               **detail_context(consult, close_form=form)), 400
    _act(consult_id, "close", request.form.to_dict())
    flash(str(ACTION_MESSAGES["close"]), "success")
    return redirect(url_for("consults.detail", consult_id=consult_id))


@bp.route("/attachments/<int:attachment_id>")
@login_required
def attachment(attachment_id: int) -> Response:
    item = services.get_visible_attachment(current_user, attachment_id)
    # Always "attachment": never rendered as a page of ours (an <img> still shows it).
    response = send_file(
        uploads.stored_path(item.stored_name),
        mimetype=item.content_type,
        as_attachment=True,
        download_name=item.original_name,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/attachments/<int:attachment_id>/preview")
@login_required
def attachment_preview(attachment_id: int) -> Response:
    """The small JPEG pages show. Patient images on shared clinic computers: the full image is
    never kept by the browser (no-store); the preview may be, privately and for ten minutes, so
    moving between pages does not fetch it again, and signing out clears the cache."""
    item = services.get_visible_attachment(current_user, attachment_id)
    if not item.is_image:
        raise NotFound(_("This file has no preview."))
    response = send_file(io.BytesIO(uploads.preview_of(item.stored_name, item.preview_name)),
                         mimetype="image/jpeg", max_age=0)
    return cache_privately(response, 600)


# ---------------------------------------------------------------- JSON API


def consult_json(consult: Consult) -> dict[str, Any]:
    return {
        "id": consult.id,
        "reference": consult.reference,
        "status": consult.status.value,
        "urgency": consult.urgency.value,
        "mode": consult.mode.value,
        "specialty": consult.specialty.code,
        "clinic": consult.clinic.name,
        "specialist_id": consult.specialist_id,
        "outcome": consult.outcome.value if consult.outcome else None,
        "rating": consult.rating,
        "referral_avoided": consult.referral_avoided,
        "course_changed": consult.course_changed,
        "created_at": consult.created_at.isoformat(),
        "updated_at": consult.updated_at.isoformat(),
    }


@bp.route("/api/consults")
@login_required
def api_list() -> Response:
    """One page of the consults the user's dashboard lists; `next_cursor` asks for the next."""
    page = services.list_consults(current_user, services.parse_consult_filters(request.args),
                                  request.args.get("cursor"), page_size_from_request())
    return jsonify({"items": [consult_json(c) for c in page.items],
                    "next_cursor": page.next_cursor, "size": page.size})


@bp.route("/api/consults/<int:consult_id>")
@login_required
def api_detail(consult_id: int) -> Response:
    consult = services.get_visible_consult(current_user, consult_id)
    record("consult.viewed", consult_id=consult.id, obj=consult)
    return jsonify(consult_json(consult))


@bp.route("/api/consults/<int:consult_id>/<any(submit,accept,decline,cancel,close):action>",
          methods=["POST"])
@login_required
def api_act(consult_id: int, action: str) -> Response:
    payload = request.get_json(silent=True)
    if payload is None:
        payload = request.form.to_dict()
    if not isinstance(payload, dict):
        raise InvalidInput(_("The request body must be a JSON object."))
    consult = _act(consult_id, action, payload)
    return jsonify(consult_json(consult))
