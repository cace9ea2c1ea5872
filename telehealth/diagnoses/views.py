"""ICD-10 search and the diagnoses of a consult."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from telehealth.consults.models import Consult
from telehealth.consults.services import get_visible_consult
from telehealth.diagnoses import services
from telehealth.errors import InvalidInput

bp = Blueprint("diagnoses", __name__, template_folder="templates")

MAX_QUERY = 100


def _query() -> str:
    query = request.args.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise InvalidInput(_("The search is too long."))
    return query


@bp.route("/api/icd10")
@login_required
def api_search() -> Response:
    return jsonify([{"code": c.display, "title": c.title} for c in services.search(_query())])


@bp.route("/consults/<int:consult_id>/diagnoses", methods=["GET", "POST"])
@login_required
def consult_diagnoses(consult_id: int) -> Any:
    consult = get_visible_consult(current_user, consult_id)
    if request.method == "POST":
        services.add_diagnosis(consult, current_user, request.form.get("code", ""))
        flash(_("Diagnosis added."), "success")
        return redirect(url_for("consults.detail", consult_id=consult.id, _anchor="diagnoses"))
    query = _query()
    return render_template("diagnoses/search.html", consult=consult, query=query,
                           results=services.search(query) if query else [],
                           can_code=services.can_code(current_user, consult))


@bp.route("/consults/<int:consult_id>/diagnoses/<int:diagnosis_id>/remove", methods=["POST"])
@login_required
def remove(consult_id: int, diagnosis_id: int) -> Response:
    consult = get_visible_consult(current_user, consult_id)
    services.remove_diagnosis(consult, current_user, diagnosis_id)
    flash(_("Diagnosis removed."), "success")
    return redirect(url_for("consults.detail", consult_id=consult.id, _anchor="diagnoses"))


@bp.app_context_processor
def diagnoses_context() -> dict[str, Any]:
    def consult_diagnoses_of(consult: Consult) -> list[Any]:
        return services.diagnoses_for(consult)

    def can_code(consult: Consult) -> bool:
        return current_user.is_authenticated and services.can_code(current_user, consult)

    return {"consult_diagnoses_of": consult_diagnoses_of, "can_code_consult": can_code}
