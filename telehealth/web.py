"""Request-level plumbing: locale, login loading, error pages, template helpers."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from flask import (
    Flask,
    current_app,
    flash,
    g,
    has_app_context,
    has_request_context,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
)
from flask_babel import format_datetime, get_locale, get_translations
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_url
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from telehealth.accounts.models import User
from telehealth.boundary import BUSY, lock_wait_ran_out, take_refusal_page
from telehealth.errors import ServiceError
from telehealth.extensions import db, login_manager
from telehealth.i18n.services import (
    LANGUAGE_NAMES,
    RTL_LANGUAGES,
    browser_language,
    label_of,
)

logger = logging.getLogger(__name__)

# Pages that change while they are open (offers arriving, lists emptying, notes coming in):
# only these load the real-time client; every other page is complete as served.
LIVE_PAGES = {"main.dashboard", "consults.detail", "situation.index", "surveillance.index"}


def select_locale() -> str | None:
    """The user's profile language, else the session's, else the browser's, else the default."""
    if not has_request_context():  # CLI commands, background tasks: the default
        return None
    if current_user and current_user.is_authenticated and current_user.locale:
        if current_user.locale in current_app.config["LANGUAGES"]:
            return str(current_user.locale)
        # Stored before validation or by hand: the page still shows; an admin repairs it.
        logger.warning("user %s: unusable stored locale %r; using the browser's",
                       current_user.id, current_user.locale)
    if session.get("locale") in current_app.config["LANGUAGES"]:
        return str(session["locale"])  # chosen with the switcher before signing in
    return browser_language(request.accept_languages, current_app.config["LANGUAGES"])


def select_timezone() -> str | None:
    if not has_request_context():
        return None
    if current_user and current_user.is_authenticated:
        from telehealth.i18n.formatting import usable_zone

        return usable_zone(current_user.timezone, f"user {current_user.id}")
    return None


class DatabaseIdConverter(IntegerConverter):
    """`<int:…>` in every route: an id the id columns can hold, else 404.

    Ids are INTEGER columns (signed 32 bits on PostgreSQL); without the bound,
    /consults/99999999999999999999 reached the database and failed there with a 500.
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 (werkzeug's)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


@login_manager.user_loader
def load_user(user_id: str) -> Any:
    # The cookie carries "id:token"; a token that no longer matches is a dead session.
    ident, _sep, token = user_id.partition(":")
    if not ident.isdigit():
        return None
    # With their languages: every staff page's menu counts the translation requests they can
    # take (by language), one statement fewer than loading them on the way.
    user = db.session.get(User, int(ident), options=[joinedload(User.languages)])
    if user is None or not user.active or user.session_token != token:
        return None
    return user


SAVE_FAILED = _l("This could not be saved because of a problem on our side. What you typed is "
                 "still in the form below: please try again.")



@login_manager.unauthorized_handler
def unauthorized() -> Any:
    """A program calling the API gets a JSON 401; a person gets the sign-in page."""
    if wants_json():
        return error_response(401, _("Please sign in first."))
    flash(str(login_manager.login_message), login_manager.login_message_category)
    return redirect(login_url(login_manager.login_view, next_url=request.url))


ROLE_LABELS = {
    "clinician": _l("clinician"),
    "specialist": _l("specialist"),
    "coordinator": _l("coordinator"),
    "admin": _l("administrator"),
    "surveillance_officer": _l("surveillance officer"),
}


def role_label(role: Any) -> str:
    return label_of(ROLE_LABELS, str(role))  # one look-up per label, not the whole table's


def wants_json() -> bool:
    # A request that sent JSON (fetch() from a page) reads its errors as JSON too.
    # Feature APIs live under /api/ or /<feature>/api/ (the situation room's figures).
    path = request.path
    return (path.startswith("/api/") or "/api/" in path or path.endswith("/api")
            or request.is_json
            or request.accept_mimetypes.best == "application/json")


def error_response(status: int, message: str, error_id: str | None = None,
                   fields: dict[str, list[str]] | None = None) -> Any:
    if wants_json():
        body: dict[str, Any] = {"error": message, "status": status}
        if error_id:
            body["error_id"] = error_id
        if fields:
            body["fields"] = fields
        return jsonify(body), status
    return render_template("error.html", status=status, message=message, error_id=error_id), status


def _refusal_page(message: str, status: int) -> Any | None:
    """The page a view named with `boundary.on_refusal`, the refusal flashed on it."""
    page = take_refusal_page()
    if page is None or wants_json():
        return None
    flash(message, "error")
    response = make_response(page())
    if not 300 <= response.status_code < 400:  # a page that sends back elsewhere stays so
        response.status_code = status
    return response


def request_translations() -> Any:
    """The translations in force for this request, looked up once per locale.

    Flask-Babel's own template `_()` looks them up again for every string (its context, the
    locale and the catalog cache: about 8 µs, and a page has a hundred strings). They are
    kept on Flask-Babel's request context next to the locale they belong to, so
    `force_locale` and `refresh` (a new locale) still change them."""
    if not has_app_context():  # a template rendered outside any app: no translations
        return get_translations()
    ctx = g.get("_flask_babel")
    if ctx is not None:
        kept = getattr(ctx, "telehealth_translations", None)
        if kept is not None and kept[0] is getattr(ctx, "babel_locale", None):
            return kept[1]
    translations = get_translations()  # sets the context's locale when it had none
    ctx = g.get("_flask_babel")
    if ctx is not None:
        ctx.telehealth_translations = (getattr(ctx, "babel_locale", None), translations)
    return translations


def init_app(app: Flask) -> None:
    """Register error handlers and template helpers: every refusal becomes a page here."""
    # Templates' `_()`, `ngettext()`: Flask-Babel's, with the translations looked up once.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
    login_manager.user_loader(load_user)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"

    @app.errorhandler(ServiceError)
    def handle_service_error(exc: ServiceError) -> Any:
        db.session.rollback()
        return _refusal_page(exc.message, exc.status_code) or error_response(
            exc.status_code, exc.message, fields=getattr(exc, "fields", None))

    @app.errorhandler(CSRFError)
    def handle_csrf(exc: CSRFError) -> Any:
        return error_response(
            400, _("The form had expired or did not come from this site. Please try again.")
        )

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException) -> Any:
        db.session.rollback()
        messages = {
            403: _("You do not have access to this page."),
            404: _("This page does not exist, or you do not have access to it."),
            405: _("This action is not allowed here."),
            413: _("The upload is too large."),
            422: _("Some of what was sent breaks the rules of this form."),
        }
        return error_response(exc.code or 500, messages.get(exc.code or 500, exc.name))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Any:
        db.session.rollback()
        error_id = uuid.uuid4().hex[:12]
        logger.exception("unhandled error %s on %s %s", error_id, request.method, request.path)
        if lock_wait_ran_out(exc):  # another writer held the lock too long (SQLite)
            logger.warning("lock wait ran out on %s %s: %s", request.method, request.path, exc)
            return _refusal_page(str(BUSY), 503) or error_response(503, str(BUSY))
        if isinstance(exc, SQLAlchemyError):  # the database failed the save, not the input
            page = _refusal_page(str(SAVE_FAILED), 503)
            if page is not None:
                return page
        return error_response(
            500, _("Something went wrong on our side. Nothing you saved before was lost."),
            error_id,
        )

    @app.context_processor
    def inject_helpers() -> dict[str, Any]:
        locale = str(get_locale() or "en")
        return {
            "role_label": role_label,
            "LANGUAGE_NAMES": LANGUAGE_NAMES,
            "current_locale": locale,
            "text_direction": "rtl" if locale in RTL_LANGUAGES else "ltr",
            "live_updates": has_request_context() and request.endpoint in LIVE_PAGES,
        }

    @app.template_filter("when")
    def format_when(value: datetime | None) -> str:
        return format_datetime(value, "medium") if value else ""
