"""One set of input rules for pages and the JSON API: the API runs the page's form class."""

from __future__ import annotations

from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto
from werkzeug.datastructures import MultiDict

from telehealth.errors import InvalidInput, Unprocessable

F = TypeVar("F", bound=FlaskForm)


def _as_form_value(value: Any) -> str:
    # JSON numbers and booleans arrive typed; a form field reads text.
    return "" if value is None else str(value)


def json_as_formdata(payload: Any) -> MultiDict[str, str]:
    """A JSON body as a form reads it: an object whose values are scalars or lists of scalars
    (a multiple choice), each as text; InvalidInput for anything else (an array, a nested
    object), so no form field ever meets a dict or a number it would choke on."""
    if not isinstance(payload, dict):
        raise InvalidInput(_("Send a JSON object of field names and values."))
    pairs = []
    for key, value in payload.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict | list):
                raise InvalidInput(_("%(field)s: send text or a number.", field=key))
            pairs.append((str(key), _as_form_value(item)))
    return MultiDict(pairs)


def _wrap_formdata(meta: Any, form: Any, formdata: Any) -> Any:
    # Flask-WTF hands a JSON body to a form as it is (ints, dicts, lists of dicts): a page's
    # form posted as JSON by hand then crashed in the view (`.strip()` of a dict). Forms read
    # JSON through the same conversion as the API's `validated`.
    if formdata is _Auto and request.is_json and not request.form and not request.files \
            and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        return json_as_formdata(request.get_json())
    return _flask_wtf_wrap_formdata(meta, form, formdata)


_flask_wtf_wrap_formdata = FlaskForm.Meta.wrap_formdata


def install_json_forms() -> None:
    """Make every FlaskForm read a JSON body as text fields (see `_wrap_formdata`)."""
    FlaskForm.Meta.wrap_formdata = _wrap_formdata


def validated(form_class: type[F], payload: dict[str, Any]) -> F:
    """The form filled from a request body, or Unprocessable (422) listing each field's errors.

    CSRF is the request's business (CSRFProtect checks every POST before a view runs), so the
    form here only checks lengths, choices and required fields.
    """
    form = form_class(formdata=json_as_formdata(payload), meta={"csrf": False})
    if form.validate():
        return form
    fields = {name: [str(e) for e in errors] for name, errors in form.errors.items()}
    summary = "; ".join(f"{form[name].label.text}: {' '.join(errors)}"
                        for name, errors in fields.items())
    raise Unprocessable(_("Please correct: %(errors)s", errors=summary), fields)


# ------------------------------------------------------------ values every feature checks
# Here, below the features, so that accounts and clinics check a zone or a language with the
# same rules as the preference pages without importing the i18n feature.


MAX_ID = 2**31 - 1  # ids are INTEGER columns (signed 32 bits on PostgreSQL)


def database_id(text: Any) -> int:
    """An id a table can hold, from a form or query value; ValueError otherwise.

    Made for werkzeug's `request.form.get(name, type=database_id)`, which turns the
    ValueError into its default: a huge id is "no such row", never a database overflow.
    """
    value = int(text)
    if not 1 <= value <= MAX_ID:
        raise ValueError(f"id out of range: {value}")
    return value


def zone_or_none(name: str) -> ZoneInfo | None:
    """The zone of that IANA name, None when there is no such zone (the one validator)."""
    if not name or len(name) > 64:  # the longest IANA name is 32; a long one is a file path
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
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
