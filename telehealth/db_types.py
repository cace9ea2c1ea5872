"""Column types shared by every feature's models, and the row count of a bulk change."""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from flask_babel import gettext as _
from sqlalchemy import CursorResult, DateTime, Enum, Result, String, event
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator

from telehealth.crypto import Sealed, seal
from telehealth.errors import Conflict

logger = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back as an aware UTC datetime.

    SQLite keeps no time zone; storing naive UTC on every database keeps one meaning.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class UnknownValue(str):
    """A stored enum value this version does not know (left by an older version, a hand edit).

    Read back instead of failing the whole query, so a page that lists the row still renders:
    as text it is "unknown: <raw>", it equals no member of its enum (every `==` and `in` test
    is False), and `.value`/`.name` give the raw string. Code that must act on the value
    calls `known(value)`, which refuses it with a clear error. Written back (an UPDATE of
    another column that names this one) it stays the raw string it was.
    """

    raw: str
    enum_class: type[enum.Enum]

    def __new__(cls, raw: str, enum_class: type[enum.Enum]) -> UnknownValue:
        self = super().__new__(cls, f"unknown: {raw}")
        self.raw = raw
        self.enum_class = enum_class
        return self

    @property
    def value(self) -> str:
        return self.raw

    @property
    def name(self) -> str:
        return self.raw

    def __repr__(self) -> str:
        return f"<unknown {self.enum_class.__name__} {self.raw!r}>"


E = TypeVar("E", bound=enum.Enum)


def known(value: E | UnknownValue) -> E:
    """The value when it is a member of its enum; Conflict (a clear 409) when it was stored by
    something this version does not understand, so nobody acts on a guess."""
    if isinstance(value, UnknownValue):
        raise Conflict(_("This record holds a value this version does not know (%(value)s); "
                         "an administrator must correct it first.", value=value.raw))
    return value


_LOGGED: set[tuple[str, str]] = set()


class _TolerantEnum(Enum):
    """SQLAlchemy's Enum, except that an unknown stored string reads as an UnknownValue (with a
    log line) instead of raising LookupError in the middle of rendering a page."""

    cache_ok = True

    def _object_value_for_elem(self, elem: str) -> str | enum.Enum:
        try:
            return super()._object_value_for_elem(elem)
        except LookupError:
            if self.enum_class is None:
                raise
            key = (self.enum_class.__name__, elem)
            if key not in _LOGGED and len(_LOGGED) < 1000:
                # Once per value and process: a list of fifty such rows is one line, not fifty.
                _LOGGED.add(key)
                logger.warning("unknown stored %s value %r: shown as unknown, not acted on",
                               *key)
            return UnknownValue(elem, self.enum_class)

    def _db_value_for_elem(self, elem: Any) -> Any:
        if isinstance(elem, UnknownValue):
            # Written back unchanged (an UPDATE that names every column): keep the raw string.
            return elem.raw
        return super()._db_value_for_elem(elem)


def string_enum(enum_class: type[enum.Enum]) -> Enum:
    """A Python enum stored as a plain string column.

    The same on SQLite and PostgreSQL, and a new value needs no ALTER TYPE. A stored string
    outside the enum reads back as an `UnknownValue` rather than breaking the query.
    """
    return _TolerantEnum(enum_class, native_enum=False, length=20, validate_strings=True)


class EncryptedString(TypeDecorator[Sealed]):
    """A secret stored encrypted (telehealth/crypto.py); read back still sealed.

    Assigning a plain str seals it at once (see `_seal_on_set`), so the attribute is always
    a `Sealed` or None and plain text never reaches the database, not even through Core.
    The length is the ciphertext's: Fernet turns n bytes into about 1.4 * n + 100 characters.
    """

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Sealed | str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = seal(value)
        return value.token

    def process_result_value(self, value: str | None, dialect: Any) -> Sealed | None:
        return None if value is None else Sealed(value)


def _seal_plain(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
    return seal(value) if isinstance(value, str) else value


@event.listens_for(Mapper, "mapper_configured")
def _seal_on_set(mapper: Mapper[Any], class_: type) -> None:
    for prop in mapper.column_attrs:
        if any(isinstance(column.type, EncryptedString) for column in prop.columns):
            event.listen(getattr(class_, prop.key), "set", _seal_plain, retval=True)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (Session.execute types it as any Result)."""
    return cast(CursorResult[Any], result).rowcount
