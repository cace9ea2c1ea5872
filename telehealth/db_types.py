"""Column types shared by every feature's models, and the row count of a bulk change."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Enum, Result, String, event
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator

from telehealth.crypto import Sealed, seal


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


def string_enum(enum_class: type[enum.Enum]) -> Enum:
    """A Python enum stored as a plain string column.

    The same on SQLite and PostgreSQL, and a new value needs no ALTER TYPE.
    """
    return Enum(enum_class, native_enum=False, length=20, validate_strings=True)


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
