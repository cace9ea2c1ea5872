"""Keyset (cursor) pagination: every list reads one page with one indexed query.

A page is asked for with the sort key of the last row already shown (the cursor), never with
an OFFSET: the database walks the index from that key, so page 1 and page 2,000 cost the
same, and rows added meanwhile neither repeat nor vanish between pages. The cursor is the
key's values as URL-safe base64 JSON; it is opaque to people and checked on the way in.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from flask import request, url_for
from flask_babel import gettext as _
from sqlalchemy import Select, bindparam, tuple_

from telehealth.errors import InvalidInput
from telehealth.extensions import db

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None
    size: int


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        return datetime.fromisoformat(value["t"])
    if value is None or isinstance(value, str | int | float):
        return value
    raise ValueError("unexpected cursor value")


def encode_cursor(values: Sequence[Any]) -> str:
    """The opaque cursor for a row whose sort key is `values`."""
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    """The sort key inside a cursor; InvalidInput (400) for anything we did not write."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(values, list) or len(values) != length:
            raise ValueError("wrong length")
        return [_decode_value(v) for v in values]
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidInput(_("This page link is not valid any more; start from the first "
                             "page.")) from exc


def page_size_from_request(default: int = DEFAULT_PAGE_SIZE) -> int:
    """`?size=` bounded to 1..MAX_PAGE_SIZE; the default otherwise."""
    raw = request.args.get("size", "")
    if not raw:
        return default
    try:
        size = int(raw)
    except ValueError as exc:
        raise InvalidInput(_("The page size must be a whole number.")) from exc
    return max(1, min(size, MAX_PAGE_SIZE))


def keyset_page(query: Select[Any], keys: Sequence[Any], cursor: str | None, size: int,
                descending: bool = False, key_of: Callable[[Any], Sequence[Any]] | None = None,
                scalars: bool = True) -> Page[Any]:
    """Run `query` for the page after `cursor`, ordered by `keys` (the last one unique).

    `keys` are SQL expressions with an index behind them, all in one direction; `key_of`
    reads the same values back from a result row (default: the attribute of each key's name).
    One statement, whatever the table's size; the row after the page says a next one exists.
    """
    if cursor:
        after = decode_cursor(cursor, len(keys))
        # Bound with each key's own type, so a time compares as the column stores it.
        bound = tuple_(*[bindparam(None, value, type_=key.type)
                         for key, value in zip(keys, after, strict=True)])
        row_key = tuple_(*keys)
        query = query.where(row_key < bound if descending else row_key > bound)
    query = query.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(size + 1)
    result = db.session.scalars(query) if scalars else db.session.execute(query)
    rows = list(result.unique().all() if scalars else result.all())
    more = len(rows) > size
    rows = rows[:size]
    if key_of is None:
        names = [k.key for k in keys]

        def key_of(row: Any) -> Sequence[Any]:
            return [getattr(row, name) for name in names]

    next_cursor = encode_cursor(key_of(rows[-1])) if more and rows else None
    return Page(items=rows, next_cursor=next_cursor, size=size)


def page_url(param: str = "cursor", cursor: str | None = None) -> str:
    """This page's URL with the same filters and `param` set to `cursor` (None: first page)."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != param}
    if cursor:
        args[param] = cursor
    return url_for(str(request.endpoint), **(request.view_args or {}), **args)
