"""Sign-in, sign-out and password change."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from telehealth.accounts import services
from telehealth.accounts.forms import LoginForm, PasswordChangeForm
from telehealth.boundary import on_refusal
from telehealth.security import services as security
from telehealth.security.inputs import safe_next
from telehealth.security.pages import too_many_attempts

bp = Blueprint("accounts", __name__, template_folder="templates")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        email, ip = form.email.data or "", request.remote_addr or ""
        # Checked before the password, so a blocked account and an unknown one look the same.
        wait = security.sign_in_wait_seconds(email, ip)
        if wait:
            security.note_blocked(email)
            return too_many_attempts(wait)
        user = services.authenticate(email, form.password.data or "")
        next_url = safe_next(request.args.get("next"))
        remember = bool(form.remember.data)
        if user is None:
            security.note_attempt(email, ip, succeeded=False)
        elif user.totp_secret:
            security.start_second_factor(user, next_url, remember)
        else:
            security.complete_sign_in(user, ip, remember=remember)
        if user is not None:
            return redirect(url_for("security.sign_in_code") if user.totp_secret else next_url)
        flash(_("Wrong e-mail or password."), "error")
        return render_template("accounts/login.html", form=form), 401
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    services.sign_out(current_user)
    logout_user()
    flash(_("You are signed out."), "info")
    response = redirect(url_for("accounts.login"))
    # A shared clinic computer: the next person must not find this one's photo previews.
    response.headers["Clear-Site-Data"] = '"cache"'
    return response


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> str | Response | tuple[str, int]:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        on_refusal(lambda: render_template("accounts/password.html", form=form))
        services.change_password(
            current_user, form.current_password.data or "", form.new_password.data or ""
        )
        # Keep this session (the others ended with the old token). Pass the user itself, not
        # the proxy: a proxy stored as the current user would resolve to itself forever.
        login_user(current_user._get_current_object())
        flash(_("Your password has been changed."), "success")
        return redirect(url_for("main.dashboard"))
    return render_template("accounts/password.html", form=form)
