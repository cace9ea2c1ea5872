"""Administration: users, clinics, and messages that keep failing."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from telehealth import jobs, transaction
from telehealth.accounts import services as accounts
from telehealth.accounts.models import Role, Specialty, User
from telehealth.admin import services
from telehealth.admin.forms import ClinicForm, UserEditForm, UserForm
from telehealth.boundary import on_refusal
from telehealth.clinics import services as clinics
from telehealth.clinics.models import Clinic
from telehealth.errors import InvalidInput, NotFound
from telehealth.extensions import db
from telehealth.i18n.services import set_preferences
from telehealth.notifications import outbox
from telehealth.notifications.models import OutboxStatus
from telehealth.pagination import page_size_from_request
from telehealth.security.roles import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")


def _clinic_choices() -> list[tuple[str, str]]:
    return [("", "—")] + [(str(c.id), c.name) for c in clinics.all_clinics()]


def _clinic_from(value: str | None) -> Clinic | None:
    return db.session.get(Clinic, int(value)) if value else None


@bp.route("/users")
@admin_required
def users() -> str:
    raw_role = request.args.get("role", "")
    try:
        role = Role(raw_role) if raw_role else None
    except ValueError as exc:
        raise InvalidInput(_("Unknown role.")) from exc
    text = request.args.get("q", "")[:100]
    page = services.users_page(role, text, request.args.get("cursor"), page_size_from_request())
    return render_template("admin/users.html", users=page.items, page=page, role=role,
                           text=text, roles=list(Role))


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def new_user() -> Any:
    form = UserForm()
    form.clinic.choices = _clinic_choices()
    form.specialties.choices = [
        (s.code, s.name) for s in db.session.scalars(select(Specialty).order_by(Specialty.name))
    ]
    if form.validate_on_submit():
        on_refusal(lambda: render_template("admin/user_form.html", form=form))
        user = accounts.create_user(
            email=form.email.data or "",
            name=form.name.data or "",
            password=form.password.data or "",
            role=Role(form.role.data),
            clinic=_clinic_from(form.clinic.data),
            timezone=form.timezone.data or "UTC",
            locale=form.locale.data,
            specialties=accounts.specialties_by_code(list(form.specialties.data or [])),
            languages={code: 3 for code in form.languages.data or []},
        )
        flash(_("%(name)s can now sign in.", name=user.name), "success")
        return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form), 400 if form.is_submitted() else 200


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def edit_user(user_id: int) -> Any:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("No such user."))
    form = UserEditForm(obj=None if _is_post() else user)
    form.clinic.choices = _clinic_choices()
    if not _is_post():
        form.role.data = user.role.value
        form.clinic.data = str(user.clinic_id or "")
        form.locale.data = user.locale or ""
    if form.validate_on_submit():
        if user.id == current_user.id and (Role(form.role.data) != Role.ADMIN or
                                           not form.active.data):
            flash(_("You cannot remove your own administrator access."), "error")
            return render_template("admin/user_edit.html", form=form, user=user), 409
        on_refusal(lambda: render_template("admin/user_edit.html", form=form, user=user))
        accounts.update_user(user, role=Role(form.role.data), active=bool(form.active.data),
                             clinic=_clinic_from(form.clinic.data))
        if form.locale.data or form.timezone.data:
            set_preferences(user, form.locale.data or user.locale or "",
                            form.timezone.data or None)
        flash(_("Saved."), "success")
        if not form.timezone.data:
            # Every account needs a zone to show times in: an empty field keeps the stored one.
            flash(_("The time zone was left as it was: %(zone)s.", zone=user.timezone), "info")
        return redirect(url_for("admin.users"))
    return render_template("admin/user_edit.html", form=form, user=user), \
        400 if form.is_submitted() else 200


def _is_post() -> bool:
    return request.method == "POST"


@bp.route("/clinics")
@admin_required
def clinic_list() -> str:
    page = services.clinics_page(request.args.get("cursor"), page_size_from_request())
    return render_template("admin/clinics.html", clinics=page.items, page=page)


@bp.route("/clinics/new", methods=["GET", "POST"])
@admin_required
def new_clinic() -> Any:
    form = ClinicForm()
    if form.validate_on_submit():
        on_refusal(lambda: render_template("admin/clinic_form.html", form=form))
        clinic = clinics.create_clinic(
            name=form.name.data or "", country=form.country.data or "",
            city=form.city.data or "", timezone=form.timezone.data or "UTC",
            languages=list(form.languages.data or []),
        )
        flash(_("Clinic %(name)s created.", name=clinic.name), "success")
        return redirect(url_for("admin.clinic_list"))
    return render_template("admin/clinic_form.html", form=form), \
        400 if form.is_submitted() else 200


@bp.route("/outbox")
@admin_required
def outbox_list() -> str:
    return render_template("admin/outbox.html", messages=outbox.troubled(),
                           counts=outbox.counts(), OutboxStatus=OutboxStatus)


@bp.route("/outbox/<int:message_id>/retry", methods=["POST"])
@admin_required
def outbox_retry(message_id: int) -> Response:
    if outbox.retry(message_id):
        # Delivered by a job once the request has committed the retry.
        transaction.after_commit(partial(jobs.enqueue, "deliver_outbox"))
        flash(_("The message will be sent again."), "success")
    else:
        flash(_("This message is not waiting for a retry."), "info")
    return redirect(url_for("admin.outbox_list"), 303)
