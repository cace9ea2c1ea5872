"""Administrators manage the area hierarchy, boundaries, clinics' areas and officers' areas."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from telehealth.accounts.models import Role, User
from telehealth.boundary import on_refusal
from telehealth.clinics.models import Clinic
from telehealth.errors import InvalidInput, NotFound
from telehealth.extensions import db
from telehealth.places import services
from telehealth.security.roles import admin_required

bp = Blueprint("places", __name__, template_folder="templates")


def _float(name: str) -> float | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidInput(_("%(field)s must be a number.", field=name)) from exc


def _id(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidInput(_("Choose from the list."))
    return int(raw)


def _get(model: Any, name: str) -> Any:
    object_id = _id(name)
    found = db.session.get(model, object_id) if object_id else None
    if found is None:
        raise NotFound(_("Choose from the list."))
    return found


@bp.route("/admin/areas", methods=["GET", "POST"])
@admin_required
def areas() -> Any:
    if request.method == "POST":
        # A refused area comes back in the form as typed, with the reason, not on an error page.
        on_refusal(lambda: _areas_page(request.form))
        parent_id = _id("parent_id")
        parent = services.get_area(parent_id) if parent_id else None
        services.create_area(request.form.get("name", ""), request.form.get("code", ""),
                             request.form.get("level", ""), parent, _float("latitude"),
                             _float("longitude"))
        flash(_("Area added."), "success")
        return redirect(url_for("places.areas"))
    return _areas_page({})


def _areas_page(typed: Any) -> str:
    officers = list(db.session.scalars(select(User).where(
        User.role == Role.SURVEILLANCE_OFFICER).order_by(User.name)))
    return render_template("places/areas.html", areas=services.all_areas(),
                           clinics=list(db.session.scalars(select(Clinic).order_by(Clinic.name))),
                           officers=officers, typed=typed)


@bp.route("/admin/areas/import", methods=["POST"])
@admin_required
def import_boundaries() -> Response:
    upload = request.files.get("file")
    raw = upload.read(services.MAX_GEOJSON_BYTES + 1) if upload else \
        request.form.get("geojson", "").encode()
    if not raw.strip():
        raise InvalidInput(_("Choose a GeoJSON file."))
    imported = services.import_geojson(raw)
    flash(_("%(count)d area boundaries imported.", count=len(imported)), "success")
    return redirect(url_for("places.areas"))


@bp.route("/admin/areas/clinic", methods=["POST"])
@admin_required
def place_clinic() -> Response:
    clinic = _get(Clinic, "clinic_id")
    area_id = _id("area_id")
    services.place_clinic(clinic, services.get_area(area_id) if area_id else None)
    flash(_("Clinic placed."), "success")
    return redirect(url_for("places.areas"))
