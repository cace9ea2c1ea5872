"""One set of input rules for pages and the JSON API: the API runs the page's form class."""

from __future__ import annotations

from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict

from telehealth.errors import InvalidInput, Unprocessable

F = TypeVar("F", bound=FlaskForm)


def _as_form_value(value: Any) -> str:
    # JSON numbers and booleans arrive typed; a form field reads text.
    return "" if value is None else str(value)


def validated(form_class: type[F], payload: dict[str, Any]) -> F:
    """The form filled from a request body, or Unprocessable (422) listing each field's errors.

    CSRF is the request's business (CSRFProtect checks every POST before a view runs), so the
    form here only checks lengths, choices and required fields.
    """
    data = MultiDict([(key, _as_form_value(value)) for key, value in payload.items()])
    form = form_class(formdata=data, meta={"csrf": False})
    if form.validate():
        return form
    fields = {name: [str(e) for e in errors] for name, errors in form.errors.items()}
    summary = "; ".join(f"{form[name].label.text}: {' '.join(errors)}"
                        for name, errors in fields.items())
    raise Unprocessable(_("Please correct: %(errors)s", errors=summary), fields)


# ------------------------------------------------------------ values every feature checks
# Here, below the features, so that accounts and clinics check a zone or a language with the
# same rules as the preference pages without importing the i18n feature.


def zone_or_none(name: str) -> ZoneInfo | None:
    """The zone of that IANA name, None when there is no such zone (the one validator)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def is_timezone(name: str) -> bool:
    return zone_or_none(name) is not None


def check_language(language: str) -> str:
    """A language the interface has; InvalidInput otherwise."""
    if language not in current_app.config["LANGUAGES"]:
        raise InvalidInput(_("This language is not available."))
    return language


def check_timezone(name: str) -> str:
    """The IANA zone name, stripped; InvalidInput when there is no such zone."""
    name = name.strip()
    if not is_timezone(name):
        raise InvalidInput(_("%(zone)s is not a known time zone (use e.g. Europe/Paris).",
                             zone=name or "—"))
    return name
