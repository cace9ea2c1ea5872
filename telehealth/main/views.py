"""The dashboard: what each role needs to see first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from telehealth.accounts.models import Role
from telehealth.consults.models import ConsultStatus
from telehealth.consults.services import (
    filter_choices,
    list_consults,
    parse_consult_filters,
    status_counts,
    status_label,
)
from telehealth.matching.services import escalated_count, escalation_queue, pending_offers_page
from telehealth.pagination import page_size_from_request, page_url

bp = Blueprint("main", __name__, template_folder="templates")

# The coordinator's dashboard shows the most pressing escalations; the queue has them all.
ESCALATIONS_ON_DASHBOARD = 10


bp.add_app_template_global(page_url)


@bp.route("/")
@login_required
def dashboard() -> Any:
    if current_user.role == Role.SURVEILLANCE_OFFICER:
        # An officer's home is the surveillance room: consults are not theirs to read.
        return redirect(url_for("surveillance.index"))
    filters = parse_consult_filters(request.args)
    size = page_size_from_request()
    page = list_consults(current_user, filters, request.args.get("cursor"), size)
    is_specialist = current_user.role == Role.SPECIALIST
    is_coordinator = current_user.role in (Role.COORDINATOR, Role.ADMIN)
    offers = pending_offers_page(current_user, request.args.get("offers_cursor"), size) \
        if is_specialist else None
    escalated = escalation_queue(size=ESCALATIONS_ON_DASHBOARD) if is_coordinator else None
    return render_template(
        "main/dashboard.html",
        page=page,
        offers=offers,
        escalated=escalated,
        escalated_total=escalated_count() if is_coordinator else 0,
        counts=status_counts(current_user),
        filters=filters,
        status_label=status_label,
        Status=ConsultStatus,
        Role=Role,
        **filter_choices(current_user),
    )
