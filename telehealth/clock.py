"""The one clock the application reads, so tests can set the time."""

from __future__ import annotations

from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(moment: datetime | None) -> None:
    """Pin now() to a moment (tests only); None lets time run again."""
    global _frozen
    if moment is not None and moment.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    _frozen = moment.astimezone(UTC) if moment is not None else None
