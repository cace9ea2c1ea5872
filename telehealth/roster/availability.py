"""Weekly hours and leave: when a specialist can be offered consults."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from babel import UnknownLocaleError
from babel.dates import get_day_names
from flask import has_request_context
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import delete

from telehealth import clock, signals
from telehealth.accounts.models import User
from telehealth.audit.services import record
from telehealth.errors import InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n import formatting
from telehealth.roster.access import is_roster_manager
from telehealth.roster.models import (
    AvailabilityWindow,
    LeavePeriod,
)

# A leave further ahead is a typo (a year 2206), not a plan.
MAX_LEAVE_AHEAD = timedelta(days=5 * 366)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# A day's name (any word, checked against the names below), then the hours.
_WINDOW_RE = re.compile(
    r"^\s*(\S+?)\.?\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _weekday_numbers(locale: str | None) -> dict[str, int]:
    """The names a person may give a weekday: the English three letters (what the roster CSV
    and the examples use) and their own language's short and long names ("lun.", "lundi",
    "Jumatatu"), compared without case or a trailing dot. No language's name for one day is
    another day's English abbreviation, so the two sets never disagree."""
    numbers = {name: number for number, name in enumerate(WEEKDAYS)}
    if locale:
        try:
            for width in ("abbreviated", "wide"):
                for number, name in get_day_names(width, locale=locale).items():
                    numbers.setdefault(name.lower().rstrip("."), number)
        except (ValueError, UnknownLocaleError):
            pass  # an unknown language: the English names still do
    return numbers


def _current_locale() -> str | None:
    locale = get_locale() if has_request_context() else None
    return str(locale) if locale else None


def parse_windows(text: str) -> list[tuple[int, int, int]]:
    """'mon 08:00-12:00; tue 14:00-18:00' -> [(0, 480, 720), (1, 840, 1080)] (local time)."""
    windows = []
    day_numbers = _weekday_numbers(_current_locale())
    for item in re.split(r"[;\n]+", text):
        if not item.strip():
            continue
        match = _WINDOW_RE.match(item)
        if not match or match.group(1).lower().rstrip(".") not in day_numbers:
            raise InvalidInput(_("%(item)s is not a window like 'mon 08:00-12:00'.",
                                 item=item.strip()))
        day, h1, m1, h2, m2 = match.groups()
        start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
        if int(m1) > 59 or int(m2) > 59 or start >= 1440 or end > 1440 or start >= end:
            raise InvalidInput(_("%(item)s: the start must come before the end, within one day "
                                 "(24:00 at the latest).", item=item.strip()))
        windows.append((day_numbers[day.lower().rstrip(".")], start, end))
    return sorted(windows)


def format_windows(windows: list[AvailabilityWindow], locale: str | None = None) -> str:
    """Weekly hours as `parse_windows` reads them back: English day names (the CSV), or
    the short names of `locale` (a form someone reads in their own language)."""
    def hhmm(minute: int) -> str:
        return f"{minute // 60:02d}:{minute % 60:02d}"

    names = WEEKDAYS
    if locale:
        try:
            short = get_day_names("abbreviated", locale=locale)
            names = [short[number] for number in range(7)]
        except (ValueError, UnknownLocaleError):
            pass
    return "; ".join(f"{names[w.weekday]} {hhmm(w.start_minute)}-{hhmm(w.end_minute)}"
                     for w in windows)


def set_windows(user: User, windows: list[tuple[int, int, int]], actor: User) -> None:
    """Replace a specialist's weekly availability (local time of their time zone)."""
    if not (is_roster_manager(actor) or actor.id == user.id):
        raise PermissionDenied(_("You cannot change this profile."))
    db.session.execute(delete(AvailabilityWindow).where(AvailabilityWindow.user_id == user.id))
    db.session.add_all(AvailabilityWindow(user_id=user.id, weekday=d, start_minute=s,
                                          end_minute=e) for d, s, e in windows)
    db.session.flush()
    record("roster.availability_changed", actor_id=actor.id, user_id=user.id,
           windows=len(windows))
    signals.specialist_changed.send(user.id, reason="specialist availability changed")


def add_leave(user: User, first_day: date, last_day: date, reason: str,
              actor: User) -> LeavePeriod:
    """Record leave from the first to the last day inclusive, in the specialist's time zone."""
    if not (is_roster_manager(actor) or actor.id == user.id):
        raise PermissionDenied(_("You cannot change this profile."))
    if last_day < first_day:
        raise InvalidInput(_("The leave must end on or after its first day."))
    zone = formatting.zone(user.timezone)  # a broken stored zone must not break the page
    today = clock.now().astimezone(zone).date()
    # Leave only keeps offers away: one already over would change nothing (a typo's year).
    if last_day < today:
        raise InvalidInput(_("This leave has already ended; give days from today on."))
    if first_day > today + MAX_LEAVE_AHEAD:
        raise InvalidInput(_("Leave can be recorded at most five years ahead."))
    leave = LeavePeriod(
        user_id=user.id,
        starts_at=datetime.combine(first_day, time(0), tzinfo=zone),
        ends_at=datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=zone),
        reason=reason.strip()[:200],
    )
    db.session.add(leave)
    db.session.flush()
    record("roster.leave_added", obj=leave, actor_id=actor.id, user_id=user.id)
    return leave


def remove_leave(leave_id: int, actor: User) -> int:
    """Delete a leave period; returns the id of the specialist it belonged to."""
    leave = db.session.get(LeavePeriod, leave_id)
    # Permission before existence: someone who may not touch a leave must not learn from a
    # 404 that this id exists (or not).
    if not (is_roster_manager(actor) or (leave is not None and actor.id == leave.user_id)):
        raise PermissionDenied(_("You cannot change this profile."))
    if leave is None:
        raise NotFound(_("No such leave."))
    user_id = leave.user_id
    db.session.delete(leave)
    db.session.flush()
    record("roster.leave_removed", actor_id=actor.id, user_id=user_id)
    signals.specialist_changed.send(user_id, reason="specialist leave removed")
    return user_id
