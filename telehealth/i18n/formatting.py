"""Dates, times and numbers in the reader's locale and time zone (Babel)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_datetime,
    format_time,
    format_timedelta,
    get_timezone_location,
)
from babel.numbers import format_decimal

from telehealth import clock
from telehealth.validation import is_timezone, zone_or_none  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


def usable_zone(name: str | None, owner: object = None) -> str:
    """A stored zone name if the app can use it, else "UTC" with a log line.

    A value stored before validation existed (or by hand) must never break a page; an
    administrator repairs it on the user's edit page.
    """
    if name and is_timezone(name):
        return name
    logger.warning("unusable stored time zone %r (%s); showing times in UTC", name, owner)
    return "UTC"


def zone(name: str | None) -> ZoneInfo:
    """The ZoneInfo of a stored zone name, UTC when it is unusable (logged)."""
    return ZoneInfo(usable_zone(name))


def local_datetime(moment: datetime, locale: str, timezone: str, fmt: str = "medium") -> str:
    """Format a UTC moment as the reader sees it: their zone, their locale's pattern."""
    return format_datetime(moment, fmt, tzinfo=zone(timezone), locale=locale)


def local_deadline(moment: datetime, locale: str, timezone: str,
                   now: datetime | None = None) -> str:
    """A deadline as the reader reads it: the time alone if it falls on their today, else
    the day and the time in the pages' one date format ('14:30', '26 nov. 2026, 09:00:00')."""
    reader_zone = zone(timezone)
    today = (now or clock.now()).astimezone(reader_zone).date()
    if moment.astimezone(reader_zone).date() == today:
        return format_time(moment, "short", tzinfo=reader_zone, locale=locale)
    return format_datetime(moment, "medium", tzinfo=reader_zone, locale=locale)


def local_call_time(moment: datetime, locale: str, timezone: str) -> str:
    """An appointment as the reader plans it: weekday, date, time and the city of their zone
    ('mardi 1 décembre 2026, 09:00 (Kinshasa)'), so nobody converts zones in their head."""
    reader_zone = zone(timezone)
    reader = Locale.parse(locale)
    date = format_date(moment.astimezone(reader_zone), "full", locale=reader)
    time = format_time(moment, "short", tzinfo=reader_zone, locale=reader)
    # How the locale joins a date and a time ('{1}, {0}'; quotes escape literal text).
    joined = str(reader.datetime_formats["full"]).replace("'", "")
    city = get_timezone_location(reader_zone, locale=reader, return_city=True)
    return f"{joined.replace('{0}', time).replace('{1}', date)} ({city})"


def relative_time(moment: datetime, locale: str, now: datetime | None = None) -> str:
    """'3 hours ago' / 'in 2 days' in the reader's language."""
    delta: timedelta = moment - (now or clock.now())
    return format_timedelta(delta, add_direction=True, locale=locale, threshold=1.0)


def local_number(value: float, locale: str) -> str:
    """A number with the locale's separators (1 234,5 in French)."""
    return format_decimal(value, locale=locale)


def language_name(code: str, in_locale: str) -> str:
    """The name of a language in the reader's language ('French' / 'français' / 'فرنسية')."""
    try:
        name = Locale.parse(in_locale).languages.get(code.split("-")[0])
    except (UnknownLocaleError, ValueError):
        name = None
    return name or code


@lru_cache(maxsize=1024)
def timezone_names() -> list[str]:
    """Every IANA zone name, sorted."""
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def zone_place(zone_name: str, locale: str) -> str:
    """A zone's place in the reader's language ('Kinshasa', 'Heure : Kinshasa')."""
    return get_timezone_location(zone_name, locale=locale)


@cache
def timezone_choices(locale: str) -> list[tuple[str, str]]:
    """(zone, its place named in the reader's language), sorted by that name."""
    choices = [(zone, get_timezone_location(zone, locale=locale)) for zone in timezone_names()]
    return sorted(choices, key=lambda choice: choice[1])


def search_timezones(query: str, locale: str, limit: int = 15) -> list[tuple[str, str]]:
    """Zones whose name or place (in the reader's language) contains the query."""
    needle = query.strip().casefold().replace(" ", "_")
    if not needle:
        return []
    spaced = needle.replace("_", " ")
    found = [(zone, place) for zone, place in timezone_choices(locale)
             if needle in zone.casefold() or spaced in place.casefold()]
    return found[:limit]
