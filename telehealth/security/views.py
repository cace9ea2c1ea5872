"""The second sign-in step (TOTP code) and turning the second factor on."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from telehealth.accounts.models import Role, User
from telehealth.errors import NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.security import services, sessions
from telehealth.security.forms import CodeForm
from telehealth.security.pages import too_many_attempts

bp = Blueprint("security", __name__, template_folder="templates")

ENROLMENT_FIELD = "_totp_new_secret"
# What a user whose role needs a second factor may still reach before turning it on.
OPEN_WITHOUT_SECOND_FACTOR = {"security.two_factor", "accounts.logout", "static"}


@bp.route("/api/session/alive")
@login_required
def session_alive() -> Any:
    # The idle clock was reset by the before_request hook: a page that holds a long call
    # (no page requests meanwhile) calls this now and then and stays signed in.
    return "", 204, {"Cache-Control": "no-store"}


@bp.route("/login/code", methods=["GET", "POST"])
def sign_in_code() -> Any:
    pending = services.pending_second_factor_user()
    if pending is None:
        flash(_("Please sign in again."), "info")
        return redirect(url_for("accounts.login"))
    user, state = pending
    # No key opens the secret: say so (503, logged) before a code is typed, never skip it.
    services.totp_secret_of(user)
    ip = request.remote_addr or ""
    form = CodeForm()
    if form.validate_on_submit():
        wait = services.sign_in_wait_seconds(user.email, ip)
        if wait:
            services.note_blocked(user.email)
            return too_many_attempts()
        if services.check_code(user, form.code.data or ""):
            services.complete_sign_in(user, ip, remember=bool(state.get("remember")))
            return redirect(state.get("next") or url_for("main.dashboard"))
        services.note_attempt(user.email, ip, succeeded=False)
        flash(_("This code is not right. Use the newest code of your app."), "error")
        return render_template("security/code.html", form=form), 401
    return render_template("security/code.html", form=form)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor() -> Any:
    if current_user.totp_secret:
        return render_template("security/two_factor.html", enabled=True)
    secret = session.get(ENROLMENT_FIELD) or services.new_totp_secret()
    session[ENROLMENT_FIELD] = secret
    form = CodeForm()
    if form.validate_on_submit():
        if services.enable_totp(current_user, secret, form.code.data or ""):
            session.pop(ENROLMENT_FIELD, None)
            flash(_("Two-step sign-in is on."), "success")
            return redirect(url_for("main.dashboard"))
        flash(_("This code is not right. Check the time on your phone and try again."), "error")
        status = 400
    else:
        status = 400 if form.is_submitted() else 200
    return render_template("security/two_factor.html", enabled=False, form=form, secret=secret,
                           uri=services.provisioning_uri(current_user, secret)), status


@bp.route("/admin/users/<int:user_id>/two-factor/reset", methods=["POST"])
@login_required
def reset_two_factor(user_id: int) -> Any:
    if current_user.role != Role.ADMIN:
        raise PermissionDenied(_("Only administrators can do this."))
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("No such user."))
    services.reset_totp(user)
    if user.id == current_user.id:
        return redirect(url_for("accounts.login"))
    flash(_("Two-step sign-in is off for %(name)s; they can turn it on again.", name=user.name),
          "success")
    return redirect(url_for("admin.edit_user", user_id=user.id))


def require_second_factor() -> Any:
    """before_request: roles that must use a second factor turn it on before anything else."""
    if not current_user.is_authenticated or request.endpoint in OPEN_WITHOUT_SECOND_FACTOR:
        return None
    if current_user.totp_secret or not sessions.second_factor_required(current_user):
        return None
    message = _("Your role needs two-step sign-in. Please turn it on to continue.")
    if request.path.startswith("/api/"):
        return jsonify({"error": message, "status": 403}), 403
    flash(message, "info")
    return redirect(url_for("security.two_factor"))
