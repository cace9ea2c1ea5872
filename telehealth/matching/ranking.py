"""Who may be offered a consult, and in which order: one indexed SQL query per consult.

Availability windows are kept in each specialist's local time. At query time every time zone
among the candidates gets its current UTC offset from zoneinfo (so DST is whatever the zone
says today), and SQL turns each window into "minutes from now" with plain arithmetic on the
minute of the week. Nothing loops over the roster in Python.

The offset is the one in force now: a window that opens after a DST change later within the
horizon (at most the routine offer's 24 hours) is placed with today's offset, one hour off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_time
from flask import current_app
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import Date, Integer, bindparam, case, cast, exists, func, select, text
from sqlalchemy.dialects.postgresql import JSONB

from telehealth import clock
from telehealth.accounts.models import Role, User, UserLanguage, user_specialties
from telehealth.consults.models import Consult, ConsultStatus, Urgency
from telehealth.db_types import UTCDateTime
from telehealth.extensions import db
from telehealth.i18n.formatting import zone_or_none
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
    minutes = current_app.config["OFFER_EXPIRY_MINUTES"][_urgency_or_most(urgency).value]
    return timedelta(minutes=int(minutes))


def offer_fanout(urgency: Urgency) -> int:
    """How many specialists get the offer at once: several for emergencies, else one."""
    return int(current_app.config["OFFER_FANOUT_BY_URGENCY"][_urgency_or_most(urgency).value])


def _urgency_or_most(urgency: Urgency) -> Urgency:
    # An urgency stored by another version (db_types.UnknownValue): the safe reading for a
    # patient is the most urgent one (shortest wait, widest offer), never a crash.
    return urgency if isinstance(urgency, Urgency) else Urgency.EMERGENCY


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


def eligibility_filters(one_consult: bool = True) -> list[Any]:
    """Roster status, credential, specialty, leave, not asked before (language: see below).

    With `one_consult` (the ranking) the specialty and the consult are bind parameters; the
    situation room counts who could take any consult of any specialty, so it leaves both out.
    """
    now = bindparam("now", type_=UTCDateTime())
    filters = [
        User.role == Role.SPECIALIST,
        User.active.is_(True),
        SpecialistProfile.status == ProfileStatus.ACTIVE,
        SpecialistProfile.credential_status == CredentialStatus.VERIFIED,
        SpecialistProfile.licence_expires_on >= bindparam("today", type_=Date()),
        ~exists().where(LeavePeriod.user_id == User.id, LeavePeriod.starts_at <= now,
                        LeavePeriod.ends_at > now),
    ]
    if one_consult:
        filters += [
            user_specialties.c.specialty_id == bindparam("specialty_id"),
            # Anyone already asked (declined, let it expire, or still deciding) is not asked
            # again.
            ~exists().where(Offer.consult_id == bindparam("consult_id"),
                            Offer.specialist_id == User.id),
        ]
    return filters


# The zones of everyone with the specialty: a cheap superset of the candidates' zones.
# Each zone is read by primary key per row: as a join, PostgreSQL hashes every user instead.
_ZONES_QUERY = (
    select(select(User.timezone).where(User.id == user_specialties.c.user_id)
           .correlate(user_specialties).scalar_subquery()).distinct()
    .where(user_specialties.c.specialty_id == bindparam("specialty_id"))
)


def per_user(query: Any) -> Any:
    return query.correlate(User).scalar_subquery()


def availability_columns(zones: tuple[str, ...], dialect: str) -> tuple[Any, Any, Any]:
    """Per specialist (correlated to User): UTC offset, minutes until available, open load.

    Parameters: `now_minute_of_week`, and the offsets (`offsets` as JSON on PostgreSQL,
    `offset_<i>` per zone elsewhere), as `zone_parameters` gives them.
    """
    if dialect == "postgresql":
        offset: Any = cast(bindparam("offsets", type_=JSONB)[User.timezone].astext, Integer)
    else:
        offset = case({zone: bindparam(f"offset_{i}") for i, zone in enumerate(zones)},
                      value=User.timezone)
    local_now = (bindparam("now_minute_of_week") + offset + MINUTES_PER_WEEK) \
        % MINUTES_PER_WEEK
    window_start = AvailabilityWindow.weekday * 1440 + AvailabilityWindow.start_minute
    window_length = AvailabilityWindow.end_minute - AvailabilityWindow.start_minute
    since_start = (local_now - window_start + MINUTES_PER_WEEK) % MINUTES_PER_WEEK
    until_start = (window_start - local_now + MINUTES_PER_WEEK) % MINUTES_PER_WEEK
    wait = per_user(select(func.min(case((since_start < window_length, 0),
                                         else_=until_start)))
                    .where(AvailabilityWindow.user_id == User.id))
    open_load = per_user(select(func.count(Consult.id)).where(
        Consult.specialist_id == User.id, Consult.status == ConsultStatus.ACCEPTED))
    return offset, wait, open_load


def zone_parameters(zones: list[str], now: datetime, dialect: str
                    ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The zones known to zoneinfo (the statement's key) and the parameters for their offsets.

    Unknown zones are left out: their specialists are never eligible.
    """
    offsets = {z: off for z in zones if (off := utc_offset_minutes(z, now)) is not None}
    known = tuple(offsets) if dialect != "postgresql" else ()
    params: dict[str, Any] = {"now_minute_of_week": _minute_of_week(now), **(
        {"offsets": offsets} if dialect == "postgresql" else
        {f"offset_{i}": offsets[zone] for i, zone in enumerate(known)})}
    return known, params if offsets else {}


@lru_cache(maxsize=256)
def _ranking_statement(zones: tuple[str, ...], dialect: str) -> Any:
    """The ranking query, built once and reused.

    The offsets (which DST changes), the time, the consult and its languages are parameters,
    so the compiled form is cached too. On PostgreSQL the zone-to-offset map is one JSON
    parameter, so the statement text never changes and the server keeps its plan; SQLite
    gets a CASE over the zone names (one statement per set of zones).
    """
    offset, wait, open_load = availability_columns(zones, dialect)
    position = func.strpos if dialect == "postgresql" else func.instr
    recent = per_user(select(func.count(Consult.id)).where(
        Consult.specialist_id == User.id,
        Consult.accepted_at >= bindparam("since_30_days", type_=UTCDateTime())))
    languages: Any = bindparam("languages", expanding=True)
    level = per_user(select(func.max(UserLanguage.level)).where(
        UserLanguage.user_id == User.id, UserLanguage.language.in_(languages)))
    best_language = per_user(
        select(UserLanguage.language)
        .where(UserLanguage.user_id == User.id, UserLanguage.language.in_(languages))
        # Equal levels: the clinic's first-listed language wins.
        .order_by(UserLanguage.level.desc(), position(
            "," + bindparam("languages_csv") + ",", "," + UserLanguage.language + ","))
        .limit(1))
    wait_minutes, open_consults = wait.label("wait_minutes"), open_load.label("open_consults")
    consults_30d, language_level = recent.label("consults_30d"), level.label("language_level")
    return (
        select(User.id.label("user_id"), User.name.label("name"),
               User.timezone.label("timezone"),
               SpecialistProfile.response_minutes_avg.label("response_minutes"),
               wait_minutes, open_consults, consults_30d, language_level,
               best_language.label("best_language"))
        .select_from(user_specialties)
        .join(User, User.id == user_specialties.c.user_id)
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .where(*eligibility_filters(),
               # Shares a language. A per-row subquery rather than EXISTS: PostgreSQL turns
               # EXISTS into a hash join over every speaker of the language.
               level.is_not(None),
               offset.is_not(None) if dialect == "postgresql" else User.timezone.in_(zones),
               # In WHERE, so that the other figures are only computed for those who pass.
               wait <= bindparam("horizon_minutes"),
               open_load < SpecialistProfile.capacity)
        .order_by(wait_minutes, open_consults, consults_30d,
                  func.coalesce(SpecialistProfile.response_minutes_avg, NO_RESPONSE_HISTORY),
                  language_level.desc(), User.id)
        .limit(bindparam("limit"))
    )


def rank_specialists(consult: Consult, limit: int | None = 20,
                     horizon: timedelta | None = None) -> list[Candidate]:
    """The eligible specialists for a consult, best first (see the module docstring)."""
    now = clock.now()
    horizon = offer_expiry(consult.urgency) if horizon is None else horizon
    zones = sorted(db.session.scalars(_ZONES_QUERY, {"specialty_id": consult.specialty_id}))
    dialect = db.session.get_bind().dialect.name
    known, zone_params = zone_parameters(zones, now, dialect)
    if not zone_params:
        return []
    params: dict[str, Any] = {
        "specialty_id": consult.specialty_id, "consult_id": consult.id,
        "languages": consult.language_list, "languages_csv": ",".join(consult.language_list),
        "now": now, "today": now.date(),
        "since_30_days": now - timedelta(days=30),
        "horizon_minutes": int(horizon.total_seconds() // 60),
        "limit": limit if limit is not None else 1_000_000,
        **zone_params,
    }
    if dialect == "postgresql":
        # JIT compiling this short query costs more than it saves (p99 x2.5 at 100,000).
        db.session.execute(text("SET LOCAL jit = off"))
    rows = db.session.execute(_ranking_statement(known, dialect), params).all()
    return [
        Candidate(
            user_id=r.user_id, name=r.name, timezone=r.timezone,
            wait_minutes=int(r.wait_minutes), open_consults=int(r.open_consults),
            consults_30d=int(r.consults_30d), response_minutes=r.response_minutes,
            language_level=int(r.language_level or 0), best_language=r.best_language or "",
        )
        for r in rows
    ]


