"""The language switcher (every page), the preferences page, and date/number filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from telehealth import clock
from telehealth.boundary import on_refusal
from telehealth.i18n import formatting, services
from telehealth.i18n.form_messages import install_form_messages
from telehealth.i18n.forms import LanguageForm, PreferencesForm
from telehealth.security.inputs import safe_next

bp = Blueprint("i18n", __name__, template_folder="templates")
bp.before_app_request(install_form_messages)


def _reader_locale() -> str:
    return str(get_locale() or "en")


@bp.route("/language", methods=["POST"])
def switch_language() -> Response:
    """Anyone may switch: signed in, the choice goes to the profile, otherwise the session."""
    form = LanguageForm()
    target = safe_next(form.next.data or _path_of(request.referrer))
    if not form.validate_on_submit():
        flash(_("This language is not available."), "error")
        return redirect(target)
    if current_user.is_authenticated:
        services.set_preferences(current_user, form.language.data or "")
    else:
        session["locale"] = services.check_language(form.language.data or "")
    return redirect(target)


def _path_of(url: str | None) -> str:
    """Only the path and query of a page of ours (never another host)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@bp.route("/account/preferences", methods=["GET", "POST"])
@login_required
def preferences() -> Any:
    form = PreferencesForm()
    if request.method == "GET":
        form.language.data = current_user.locale or _reader_locale()
        form.timezone.data = current_user.timezone
    if form.validate_on_submit():
        on_refusal(lambda: _preferences_page(form))
        services.set_preferences(current_user, form.language.data or "",
                                 form.timezone.data or "")
        flash(_("Your preferences are saved."), "success")
        return redirect(url_for("i18n.preferences"))
    status = 400 if form.is_submitted() else 200
    return _preferences_page(form), status


def _preferences_page(form: PreferencesForm) -> str:
    zone = form.timezone.data or ""
    place = formatting.zone_place(zone, _reader_locale()) if formatting.is_timezone(zone) \
        else ""
    return render_template("i18n/preferences.html", form=form, now_utc=clock.now(), place=place)


@bp.route("/api/timezones")
def search_timezones() -> Response:
    """Time zones matching what was typed, with their place in the reader's language (public:
    the sign-up page asks too)."""
    query = request.args.get("q", "")[:64]
    matches = formatting.search_timezones(query, _reader_locale())
    return jsonify([{"zone": zone, "place": place} for zone, place in matches])


@bp.app_context_processor
def switcher_context() -> dict[str, Any]:
    def language_form() -> LanguageForm:
        # Back to this page after switching; a page shown after a POST has no GET of its own.
        here = request.full_path.rstrip("?") if request.method == "GET" \
            else _path_of(request.referrer)
        return LanguageForm(formdata=None, language=_reader_locale(), next=here)

    return {"language_form": language_form}


@bp.app_template_filter("ago")
def ago(value: datetime | None) -> str:
    """'3 hours ago', in the reader's language."""
    return formatting.relative_time(value, _reader_locale()) if value else ""


@bp.app_template_filter("number")
def number(value: float | None) -> str:
    return formatting.local_number(value, _reader_locale()) if value is not None else ""


@bp.app_template_filter("language_name")
def language_name(code: str | None) -> str:
    return formatting.language_name(code, _reader_locale()) if code else ""
