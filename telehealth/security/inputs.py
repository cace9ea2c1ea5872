"""Control characters are taken out of everything people submit, before any view sees it.

PostgreSQL cannot store NUL in text (a note with one would fail to save, and retrying would
not help), and the other C0 controls only ever hide or garble text. Tab, newline and carriage
return stay.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Request, json, url_for
from werkzeug.datastructures import ImmutableMultiDict

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def strip_controls(value: Any) -> Any:
    """The value with control characters removed from every string in it."""
    if isinstance(value, str):
        return _CONTROL.sub("", value)
    if isinstance(value, list):
        return [strip_controls(item) for item in value]
    if isinstance(value, dict):
        return {strip_controls(k): strip_controls(v) for k, v in value.items()}
    return value


class _CleanJSON:
    """Flask's JSON module, with strings cleaned on the way in."""

    @staticmethod
    def loads(data: Any, **kwargs: Any) -> Any:
        return strip_controls(json.loads(data, **kwargs))

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)


class CleanRequest(Request):
    """The application's request class: form fields and JSON bodies without control characters."""

    json_module = _CleanJSON

    def _load_form_data(self) -> None:
        super()._load_form_data()
        form = self.__dict__.get("form")
        if form:
            self.__dict__["form"] = ImmutableMultiDict(
                [(strip_controls(k), strip_controls(v)) for k, v in form.items(multi=True)]
            )


def safe_next(target: str | None) -> str:
    """Follow next= only to a path on this site, never to another host."""
    if not target:
        return url_for("main.dashboard")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return url_for("main.dashboard")
    return target
