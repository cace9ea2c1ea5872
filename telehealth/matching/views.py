"""Coordinators: who could take a consult and why, and assigning it by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from telehealth import clock
from telehealth.consults.services import filter_choices, get_visible_consult
from telehealth.errors import InvalidInput
from telehealth.extensions import db
from telehealth.matching import services
from telehealth.matching.models import Offer
from telehealth.pagination import page_size_from_request
from telehealth.roster.forms import AssignForm
from telehealth.roster.services import (
    assignable_specialists,
    get_specialist,
    require_roster_manager,
    specialist_by_email,
)

bp = Blueprint("matching", __name__, template_folder="templates")


@bp.route("/escalations")
@login_required
def escalations() -> Any:
    """The escalation queue: every escalated consult, most pressing first, by specialty."""
    require_roster_manager(current_user)
    try:
        specialty_id = int(request.args["specialty"]) if request.args.get("specialty") else None
    except ValueError as exc:
        raise InvalidInput(_("Choose a specialty from the list.")) from exc
    page = services.escalation_queue(specialty_id, request.args.get("cursor"),
                                     page_size_from_request())
    return render_template("matching/escalations.html", page=page, specialty_id=specialty_id,
                           total=services.escalated_count(),
                           **filter_choices(current_user))


@bp.route("/consults/<int:consult_id>/matching")
@login_required
def candidates(consult_id: int) -> Any:
    require_roster_manager(current_user)
    consult = get_visible_consult(current_user, consult_id)
    ranked = services.rank_specialists(consult, limit=20)
    offers = list(db.session.scalars(select(Offer).where(Offer.consult_id == consult.id)
                                     .options(joinedload(Offer.specialist))
                                     .order_by(Offer.created_at, Offer.id)))
    names = {offer.specialist_id: offer.specialist.name for offer in offers}
    return render_template("matching/candidates.html", consult=consult, ranked=ranked,
                           offers=offers, names=names, now=clock.now(), form=AssignForm(),
                           specialists=assignable_specialists(consult.specialty_id))


@bp.route("/consults/<int:consult_id>/assign", methods=["POST"])
@login_required
def assign(consult_id: int) -> Any:
    require_roster_manager(current_user)
    consult = get_visible_consult(current_user, consult_id)
    form = AssignForm()
    if not form.validate_on_submit() or not (form.specialist_id.data or
                                             (form.specialist_email.data or "").strip()):
        raise InvalidInput(_("Choose a specialist."))
    # An address typed is a deliberate choice; the list keeps its first entry selected.
    specialist = (specialist_by_email(form.specialist_email.data)
                  if (form.specialist_email.data or "").strip()
                  else get_specialist(int(form.specialist_id.data or 0)))
    services.assign_consult(consult, specialist, current_user, note=form.note.data or "")
    flash(_("The consult is assigned to %(name)s.", name=specialist.name), "success")
    return redirect(url_for("consults.detail", consult_id=consult.id))


@bp.app_template_filter("answer_by")
def answer_by(deadline: datetime | None) -> str:
    """An offer's deadline on the reader's page: 'answer by 14:30' in their zone."""
    if deadline is None:
        return ""
    return services.answer_by(deadline, str(get_locale() or "en"), str(get_timezone() or "UTC"))
