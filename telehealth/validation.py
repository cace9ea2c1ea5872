"""One set of input rules for pages and the JSON API: the API runs the page's form class."""

from __future__ import annotations

from typing import Any, TypeVar

from flask_babel import gettext as _
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict

from telehealth.errors import Unprocessable

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
