"""Who may be offered a consult, and in which order: one indexed SQL query per consult.

Availability windows are kept in each specialist's local time. At query time every time zone
among the candidates gets its current UTC offset from zoneinfo (so DST is whatever the zone
says today), and SQL turns each window into "minutes from now" with plain arithmetic on the
minute of the week. Nothing loops over the roster in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_time
from flask import current_app
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import and_, case, exists, func, literal, select

from telehealth import clock
from telehealth.accounts.models import Role, User, UserLanguage, user_specialties
from telehealth.consults.models import Consult, ConsultStatus, Urgency
from telehealth.extensions import db
from telehealth.matching.models import Offer
from telehealth.roster.models import (
    AvailabilityWindow,
    CredentialStatus,
    LeavePeriod,
    ProfileStatus,
    SpecialistProfile,
)

MINUTES_PER_WEEK = 7 * 24 * 60
NO_RESPONSE_HISTORY = 10_000.0  # ranks specialists without history after the responsive ones


def offer_expiry(urgency: Urgency) -> timedelta:
    """How long an offer of this urgency waits for an answer (configurable)."""
    minutes = current_app.config["OFFER_EXPIRY_MINUTES"][urgency.value]
    return timedelta(minutes=int(minutes))


def offer_fanout(urgency: Urgency) -> int:
    """How many specialists get the offer at once: several for emergencies, else one."""
    return int(current_app.config["OFFER_FANOUT_BY_URGENCY"][urgency.value])


@lru_cache(maxsize=1024)
def zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def utc_offset_minutes(zone_name: str, moment: datetime) -> int | None:
    """The zone's offset from UTC at that moment (DST included), None for an unknown zone."""
    zone = zone_or_none(zone_name)
    if zone is None:
        return None
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _minute_of_week(moment: datetime) -> int:
    return moment.weekday() * 1440 + moment.hour * 60 + moment.minute


@dataclass
class Candidate:
    """One eligible specialist with the facts the ranking used."""

    user_id: int
    name: str
    timezone: str
    wait_minutes: int
    open_consults: int
    consults_30d: int
    response_minutes: float | None
    language_level: int
    best_language: str

    @property
    def available_now(self) -> bool:
        return self.wait_minutes == 0

    def reasons(self, now: datetime | None = None) -> str:
        """Why this specialist ranks here, in the reader's language."""
        now = now or clock.now()
        zone = zone_or_none(self.timezone)
        city = self.timezone.rsplit("/", 1)[-1].replace("_", " ")
        locale = get_locale() or Locale("en")
        parts = []
        if zone is not None:
            local_time = format_time(now, "short", tzinfo=zone, locale=locale)
            if self.available_now:
                parts.append(_("available now, %(time)s in %(city)s", time=local_time,
                               city=city))
            else:
                parts.append(_("available in %(minutes)d min (now %(time)s in %(city)s)",
                               minutes=self.wait_minutes, time=local_time, city=city))
        try:
            language = Locale.parse(self.best_language).get_display_name(locale) or \
                self.best_language
        except (ValueError, UnknownLocaleError):
            language = self.best_language
        parts.append(_("speaks %(language)s", language=language))
        parts.append(ngettext("%(num)d open consult", "%(num)d open consults",
                              self.open_consults))
        parts.append(ngettext("%(num)d consult in 30 days", "%(num)d consults in 30 days",
                              self.consults_30d))
        if self.response_minutes is not None:
            parts.append(_("answers in %(minutes)d min on average",
                           minutes=round(self.response_minutes)))
        return "; ".join(parts)


def _eligibility_filters(consult: Consult, now: datetime) -> list[Any]:
    """Everything except time of day: roster status, credential, specialty, language, leave."""
    languages = consult.language_list
    return [
        User.role == Role.SPECIALIST,
        User.active.is_(True),
        SpecialistProfile.status == ProfileStatus.ACTIVE,
        SpecialistProfile.credential_status == CredentialStatus.VERIFIED,
        SpecialistProfile.licence_expires_on >= now.date(),
        exists().where(UserLanguage.user_id == User.id, UserLanguage.language.in_(languages)),
        ~exists().where(LeavePeriod.user_id == User.id, LeavePeriod.starts_at <= now,
                        LeavePeriod.ends_at > now),
        # Anyone already asked (declined, let it expire, or still deciding) is not asked again.
        ~exists().where(Offer.consult_id == consult.id, Offer.specialist_id == User.id),
    ]


def _base_query(consult: Consult, now: datetime, *columns: Any) -> Any:
    return (
        select(*columns)
        .select_from(user_specialties)
        .join(User, User.id == user_specialties.c.user_id)
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .where(user_specialties.c.specialty_id == consult.specialty_id,
               *_eligibility_filters(consult, now))
    )


def rank_specialists(consult: Consult, limit: int | None = 20,
                     horizon: timedelta | None = None) -> list[Candidate]:
    """The eligible specialists for a consult, best first (see the module docstring)."""
    now = clock.now()
    horizon = offer_expiry(consult.urgency) if horizon is None else horizon
    zones = list(db.session.scalars(_base_query(consult, now, User.timezone).distinct()))
    offsets = {z: off for z in zones if (off := utc_offset_minutes(z, now)) is not None}
    if not offsets:
        return []
    local_now = (literal(_minute_of_week(now.astimezone(ZoneInfo("UTC")))) + case(
        offsets, value=User.timezone) + MINUTES_PER_WEEK) % MINUTES_PER_WEEK
    window_start = AvailabilityWindow.weekday * 1440 + AvailabilityWindow.start_minute
    window_length = AvailabilityWindow.end_minute - AvailabilityWindow.start_minute
    since_start = (local_now - window_start + MINUTES_PER_WEEK) % MINUTES_PER_WEEK
    until_start = (window_start - local_now + MINUTES_PER_WEEK) % MINUTES_PER_WEEK
    wait = (
        select(func.min(case((since_start < window_length, 0), else_=until_start)))
        .where(AvailabilityWindow.user_id == User.id)
        .correlate(User)
        .scalar_subquery()
    )
    open_load = (
        select(func.count(Consult.id))
        .where(Consult.specialist_id == User.id, Consult.status == ConsultStatus.ACCEPTED)
        .correlate(User)
        .scalar_subquery()
    )
    recent = (
        select(func.count(Consult.id))
        .where(Consult.specialist_id == User.id, Consult.accepted_at >= now - timedelta(days=30))
        .correlate(User)
        .scalar_subquery()
    )
    level = (
        select(func.max(UserLanguage.level))
        .where(UserLanguage.user_id == User.id,
               UserLanguage.language.in_(consult.language_list))
        .correlate(User)
        .scalar_subquery()
    )
    inner = _base_query(
        consult, now,
        User.id.label("user_id"), User.name.label("name"), User.timezone.label("timezone"),
        SpecialistProfile.capacity.label("capacity"),
        SpecialistProfile.response_minutes_avg.label("response_minutes"),
        wait.label("wait_minutes"), open_load.label("open_consults"),
        recent.label("consults_30d"), level.label("language_level"),
    ).where(User.timezone.in_(list(offsets))).subquery()
    query = (
        select(inner)
        .where(and_(inner.c.wait_minutes <= int(horizon.total_seconds() // 60),
                    inner.c.open_consults < inner.c.capacity))
        .order_by(
            inner.c.wait_minutes, inner.c.open_consults, inner.c.consults_30d,
            func.coalesce(inner.c.response_minutes, NO_RESPONSE_HISTORY),
            inner.c.language_level.desc(), inner.c.user_id,
        )
    )
    if limit is not None:
        query = query.limit(limit)
    rows = db.session.execute(query).all()
    best_language = _best_languages([r.user_id for r in rows], consult.language_list)
    return [
        Candidate(
            user_id=r.user_id, name=r.name, timezone=r.timezone,
            wait_minutes=int(r.wait_minutes), open_consults=int(r.open_consults),
            consults_30d=int(r.consults_30d), response_minutes=r.response_minutes,
            language_level=int(r.language_level or 0),
            best_language=best_language.get(r.user_id, ""),
        )
        for r in rows
    ]


def _best_languages(user_ids: list[int], languages: list[str]) -> dict[int, str]:
    """For the ranked page only: each specialist's strongest language the clinic reads."""
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(UserLanguage.user_id, UserLanguage.language, UserLanguage.level)
        .where(UserLanguage.user_id.in_(user_ids), UserLanguage.language.in_(languages))
    ).all()
    order = {code: index for index, code in enumerate(languages)}
    best: dict[int, tuple[int, int, str]] = {}
    for user_id, code, lang_level in rows:
        key = (-lang_level, order.get(code, 99), code)
        if user_id not in best or key < best[user_id]:
            best[user_id] = key
    return {user_id: key[2] for user_id, key in best.items()}
