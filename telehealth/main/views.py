"""The dashboard: what each role needs to see first."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from telehealth.accounts.models import Role
from telehealth.consults.models import ConsultStatus
from telehealth.consults.services import list_for_dashboard, status_label
from telehealth.matching.services import pending_offers_for

bp = Blueprint("main", __name__, template_folder="templates")


@bp.route("/")
@login_required
def dashboard() -> str:
    consults = list_for_dashboard(current_user)
    offers = pending_offers_for(current_user) if current_user.role == Role.SPECIALIST else []
    by_status: dict[ConsultStatus, list] = {}
    for consult in consults:
        by_status.setdefault(consult.status, []).append(consult)
    order = [s for s in ConsultStatus if s in by_status]
    return render_template(
        "main/dashboard.html",
        consults=consults,
        offers=offers,
        by_status=by_status,
        status_order=order,
        status_label=status_label,
        Role=Role,
    )
