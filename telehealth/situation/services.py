"""The situation room's figures: every one a SQL aggregate, the same on PostgreSQL and SQLite.

Nothing here loads rows to count them. The only rows read one by one are the people a
coordinator must act on (volunteers blocking a gap, licences about to expire, silent clinics),
and those lists are short by construction.

Medians and 90th percentiles are linear-interpolation percentiles (PostgreSQL's
`percentile_cont`); SQLite has no such aggregate, so `percentile_rows` computes the same value
from window functions (row_number and count). Durations are whole seconds on both databases
(SQLite's `strftime('%s')` truncates, PostgreSQL's `floor(extract(epoch))` too), so both give
identical figures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User, UserLanguage, user_specialties
from telehealth.clinics.models import Clinic
from telehealth.consults.models import TAKEABLE_STATUSES, Consult, ConsultStatus, Urgency
from telehealth.errors import InvalidInput
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.ranking import (
    availability_columns,
    eligibility_filters,
    zone_parameters,
)
from telehealth.roster.models import (
    EXPIRY_WARNING_DAYS,
    AvailabilityWindow,
    CredentialStatus,
    LeavePeriod,
    ProfileStatus,
    SpecialistProfile,
)
from telehealth.web import LANGUAGE_NAMES

logger = logging.getLogger(__name__)

PERIOD_DAYS = (7, 30, 90, 365)
DEFAULT_PERIOD_DAYS = 90
SILENT_DAYS = 30
IDLE_DAYS = 90
SUPPLY_HORIZON_MINUTES = 24 * 60
# How soon each urgency should be answered (the request form promises minutes, hours, days).
# A deployment may set SITUATION_ANSWER_DEADLINE_MINUTES to its own promises.
ANSWER_DEADLINE_MINUTES = {"emergency": 60, "urgent": 12 * 60, "routine": 72 * 60}
QUANTILES = (0.5, 0.9)
DIGITS = 2


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What the coordinator narrowed the room to; every field is kept in the URL."""

    days: int = DEFAULT_PERIOD_DAYS
    clinic_id: int | None = None
    specialty: str | None = None  # a specialty's code
    language: str | None = None
    urgency: Urgency | None = None

    @classmethod
    def parse(cls, args: Any) -> Filters:
        """Read the filters from query arguments; anything unknown is a clear 400."""
        try:
            days = int(args.get("period") or DEFAULT_PERIOD_DAYS)
            clinic = args.get("clinic") or None
            clinic_id = int(clinic) if clinic is not None else None
        except ValueError as exc:
            raise InvalidInput(_("The period and the clinic must be numbers.")) from exc
        if days not in PERIOD_DAYS:
            raise InvalidInput(_("Choose a period of 7, 30, 90 or 365 days."))
        language = args.get("language") or None
        if language is not None and language not in LANGUAGE_NAMES:
            raise InvalidInput(_("Unknown language."))
        urgency = args.get("urgency") or None
        if urgency is not None and urgency not in {u.value for u in Urgency}:
            raise InvalidInput(_("Unknown urgency."))
        specialty = args.get("specialty") or None
        if specialty is not None and db.session.scalar(
                select(Specialty.id).where(Specialty.code == specialty)) is None:
            raise InvalidInput(_("Unknown specialty."))
        if clinic_id is not None and db.session.get(Clinic, clinic_id) is None:
            raise InvalidInput(_("Unknown clinic."))
        return cls(days=days, clinic_id=clinic_id, specialty=specialty, language=language,
                   urgency=Urgency(urgency) if urgency else None)

    def query_args(self) -> dict[str, str]:
        """The filters as URL arguments (defaults left out)."""
        pairs = {"period": str(self.days) if self.days != DEFAULT_PERIOD_DAYS else None,
                 "clinic": str(self.clinic_id) if self.clinic_id else None,
                 "specialty": self.specialty, "language": self.language,
                 "urgency": self.urgency.value if self.urgency else None}
        return {key: value for key, value in pairs.items() if value}


def _speaks(language_column: Any, code: Any) -> ColumnElement[bool]:
    """A consult's comma-separated languages include this code."""
    return (literal(",") + language_column + literal(",")).like(
        literal("%,") + code + literal(",%"))


def consult_filters(filters: Filters) -> list[Any]:
    """The clinic, specialty, language and urgency filters on consults."""
    clauses: list[Any] = []
    if filters.clinic_id is not None:
        clauses.append(Consult.clinic_id == filters.clinic_id)
    if filters.specialty is not None:
        clauses.append(Consult.specialty_id == select(Specialty.id).where(
            Specialty.code == filters.specialty).scalar_subquery())
    if filters.language is not None:
        clauses.append(_speaks(Consult.languages, literal(filters.language)))
    if filters.urgency is not None:
        clauses.append(Consult.urgency == filters.urgency)
    return clauses


def volunteer_filters(filters: Filters) -> list[Any]:
    """The specialty and language filters on volunteers (correlated to User)."""
    clauses: list[Any] = []
    if filters.specialty is not None:
        clauses.append(exists().where(
            user_specialties.c.user_id == User.id,
            user_specialties.c.specialty_id == Specialty.id, Specialty.code == filters.specialty))
    if filters.language is not None:
        clauses.append(exists().where(UserLanguage.user_id == User.id,
                                      UserLanguage.language == filters.language))
    return clauses


# ---------------------------------------------------------------- tables


@dataclass
class Table:
    """One figure: its rows, the column keys (JSON, CSV) and headers (the page)."""

    key: str
    title: Any
    columns: list[str]
    headers: list[Any]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def _share(part: Any, whole: Any) -> float | None:
    return round(float(part or 0) / float(whole), 4) if whole else None


def _epoch_seconds(column: Any) -> Any:
    if _dialect() == "postgresql":
        return func.floor(func.extract("epoch", column))
    return cast(func.strftime("%s", column), Integer)


def hours_between(later: Any, earlier: Any) -> Any:
    """Hours from one timestamp to another, from whole seconds (identical on both databases)."""
    return cast(_epoch_seconds(later) - _epoch_seconds(earlier), Float) / 3600.0


def week_of(column: Any) -> Any:
    """The Monday of the timestamp's week, as text YYYY-MM-DD."""
    if _dialect() == "postgresql":
        return func.to_char(func.date_trunc("week", column), "YYYY-MM-DD")
    return func.date(column, "weekday 0", "-6 days")


def month_of(column: Any) -> Any:
    if _dialect() == "postgresql":
        return func.to_char(func.date_trunc("month", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def percentile_rows(values: Any, quantiles: tuple[float, ...] = QUANTILES,
                    portable: bool | None = None) -> Any:
    """Per (grp, metric) of a subquery with columns grp, metric, value: n and each quantile.

    PostgreSQL: percentile_cont. Elsewhere (or `portable`, for the tests that compare them)
    the same interpolation from ranks: the value at position q * (n - 1) among the sorted
    values, between the two ranks around it.
    """
    keys = (values.c.grp, values.c.metric)
    postgresql = _dialect() == "postgresql"
    if postgresql and not portable:
        return (select(*keys, func.count().label("n"),
                       *[func.percentile_cont(q).within_group(values.c.value).label(f"q{i}")
                         for i, q in enumerate(quantiles)])
                .group_by(*keys))
    ranked = select(
        *keys, values.c.value,
        (func.row_number().over(partition_by=keys, order_by=values.c.value) - 1).label("i"),
        func.count().over(partition_by=keys).label("n"),
    ).subquery()

    def quantile(q: float) -> Any:
        position = q * (ranked.c.n - 1)
        # Floor (positions are never negative): SQLite's CAST truncates, PostgreSQL's rounds.
        below = cast(func.floor(position), Integer) if postgresql else cast(position, Integer)
        fraction = position - below
        return func.sum(case((ranked.c.i == below, ranked.c.value * (1 - fraction)), else_=0.0)
                        + case((ranked.c.i == below + 1, ranked.c.value * fraction), else_=0.0))

    return (select(ranked.c.grp, ranked.c.metric, func.max(ranked.c.n).label("n"),
                   *[quantile(q).label(f"q{i}") for i, q in enumerate(quantiles)])
            .group_by(ranked.c.grp, ranked.c.metric))


# ---------------------------------------------------------------- demand and supply


def _languages() -> Any:
    """The interface's languages as a one-column subquery (the language axis of the heat map)."""
    return union_all(*[select(literal(code).label("code")) for code in LANGUAGE_NAMES]).subquery()


def specialty_names() -> dict[int, tuple[str, str]]:
    """Every specialty's (code, name) by id."""
    # The hybrid `name` is in the reader's language; a selected column would be the stored one.
    return {s.id: (s.code, s.name) for s in db.session.scalars(select(Specialty))}


def demand_counts(filters: Filters) -> dict[tuple[int, str], int]:
    """Consults waiting for a specialist, by (specialty, language they can be answered in)."""
    languages = _languages()
    query = (select(Consult.specialty_id, languages.c.code, func.count(Consult.id))
             .join(languages, _speaks(Consult.languages, languages.c.code))
             .where(Consult.status.in_(TAKEABLE_STATUSES), *consult_filters(filters))
             .group_by(Consult.specialty_id, languages.c.code))
    if filters.language is not None:
        query = query.where(languages.c.code == filters.language)
    return {(r[0], r[1]): int(r[2]) for r in db.session.execute(query)}


def supply_counts(filters: Filters) -> dict[tuple[int, str], tuple[int, int]]:
    """Volunteers who could be offered a consult now and within 24 h, by specialty and language,
    by the matching's own rules (telehealth/matching/ranking.py)."""
    now = clock.now()
    dialect = _dialect()
    zones = sorted(db.session.scalars(select(User.timezone).distinct().where(
        User.role == Role.SPECIALIST)))
    known, params = zone_parameters(zones, now, dialect)
    if not params:
        return {}
    offset, wait, open_load = availability_columns(known, dialect)
    # Who is eligible, once per volunteer (the per-volunteer subqueries run once each), then
    # spread over their specialties and languages.
    eligible = (
        select(User.id.label("user_id"), wait.label("wait"))
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .where(*eligibility_filters(one_consult=False),
               offset.is_not(None) if dialect == "postgresql" else User.timezone.in_(known),
               wait <= SUPPLY_HORIZON_MINUTES,
               open_load < SpecialistProfile.capacity)
        .cte("eligible").prefix_with("MATERIALIZED", dialect="postgresql")
    )
    query = (select(user_specialties.c.specialty_id, UserLanguage.language,
                    func.sum(case((eligible.c.wait == 0, 1), else_=0)), func.count())
             .select_from(eligible)
             .join(user_specialties, user_specialties.c.user_id == eligible.c.user_id)
             .join(UserLanguage, UserLanguage.user_id == eligible.c.user_id)
             .where(UserLanguage.language.in_(list(LANGUAGE_NAMES)))
             .group_by(user_specialties.c.specialty_id, UserLanguage.language))
    if filters.specialty is not None:
        query = query.join(Specialty, Specialty.id == user_specialties.c.specialty_id) \
            .where(Specialty.code == filters.specialty)
    if filters.language is not None:
        query = query.where(UserLanguage.language == filters.language)
    rows = db.session.execute(query, {**params, "now": now, "today": now.date()})
    return {(r[0], r[1]): (int(r[2] or 0), int(r[3] or 0)) for r in rows}


@dataclass
class HeatMap:
    """Specialties × languages: open consults against volunteers eligible now / within 24 h."""

    specialties: list[tuple[int, str]]  # (id, name)
    languages: list[str]
    cells: dict[tuple[int, str], tuple[int, int, int]]  # (open, now, within 24 h)
    table: Table


def demand_supply(filters: Filters,
                  names: dict[int, tuple[str, str]] | None = None) -> HeatMap:
    demand = demand_counts(filters)
    supply = supply_counts(filters)
    names = specialty_names() if names is None else names
    keys = set(demand) | set(supply)
    cells = {key: (demand.get(key, 0), *supply.get(key, (0, 0))) for key in keys}
    # Where the work is first: most open consults, then by name.
    waiting = {s: sum(n for (sid, _), n in demand.items() if sid == s) for s, _ in keys}
    specialty_ids = sorted(waiting, key=lambda s: (-waiting[s], names[s][1]))
    languages = [code for code in LANGUAGE_NAMES if any(lang == code for _, lang in keys)]
    table = Table("demand", _l("Demand and supply"),
                  ["specialty", "language", "open_consults", "eligible_now", "eligible_24h"],
                  [_l("Specialty"), _l("Language"), _l("Open consults"),
                   _l("Volunteers eligible now"), _l("Eligible within 24 h")])
    table.rows = [(names[s][0], lang, *cells[(s, lang)])
                  for s in specialty_ids for lang in languages if (s, lang) in cells]
    return HeatMap([(s, names[s][1]) for s in specialty_ids], languages, cells, table)


# Why a volunteer with the specialty and the language cannot be offered the consult.
BLOCK_REASONS = {
    "inactive": _l("account switched off"),
    "not_approved": _l("roster profile not approved"),
    "unverified": _l("licence not verified"),
    "expired": _l("licence expired"),
    "on_leave": _l("on leave"),
    "at_capacity": _l("at capacity"),
    "unavailable": _l("not available within 24 h"),
}


@dataclass
class Gap:
    specialty: str  # code
    specialty_name: str
    language: str
    open_consults: int
    blocked: list[tuple[str, str]]  # (volunteer's name, reason key)


def _block_reason(row: Any) -> str:
    today = clock.now().date()
    if not row.active:
        return "inactive"
    if row.status != ProfileStatus.ACTIVE:
        return "not_approved"
    if row.credential_status != CredentialStatus.VERIFIED:
        return "unverified"
    if row.licence_expires_on is None or row.licence_expires_on < today:
        return "expired"
    if row.on_leave:
        return "on_leave"
    if row.open_load >= row.capacity:
        return "at_capacity"
    return "unavailable"


def gap_list(heat: HeatMap,
             names: dict[int, tuple[str, str]] | None = None) -> tuple[list[Gap], Table]:
    """The cells with open consults and nobody eligible within 24 h, and what would fix them:
    the volunteers who have the specialty and the language but are blocked (and why), or,
    when there are none, the specialty and language to recruit."""
    names = specialty_names() if names is None else names
    gap_keys = [key for key, (open_, _, within_day) in heat.cells.items()
                if open_ > 0 and within_day == 0]
    blocked: dict[tuple[int, str], list[tuple[str, str]]] = {key: [] for key in gap_keys}
    if gap_keys:
        now = clock.now()
        on_leave = exists().where(LeavePeriod.user_id == User.id, LeavePeriod.starts_at <= now,
                                  LeavePeriod.ends_at > now)
        open_load = (select(func.count(Consult.id)).where(
            Consult.specialist_id == User.id, Consult.status == ConsultStatus.ACCEPTED)
            .correlate(User).scalar_subquery())
        rows = db.session.execute(
            select(user_specialties.c.specialty_id, UserLanguage.language, User.name,
                   User.active, SpecialistProfile.status, SpecialistProfile.credential_status,
                   SpecialistProfile.licence_expires_on, SpecialistProfile.capacity,
                   on_leave.label("on_leave"), open_load.label("open_load"))
            .select_from(user_specialties)
            .join(User, User.id == user_specialties.c.user_id)
            .join(UserLanguage, UserLanguage.user_id == User.id)
            .outerjoin(SpecialistProfile, SpecialistProfile.user_id == User.id)
            .where(User.role == Role.SPECIALIST,
                   tuple_(user_specialties.c.specialty_id, UserLanguage.language)
                   .in_(gap_keys))
            .order_by(User.name))
        for row in rows:
            blocked[(row.specialty_id, row.language)].append((row.name, _block_reason(row)))
    gaps = sorted((Gap(names[s][0], names[s][1], lang, heat.cells[(s, lang)][0],
                       blocked[(s, lang)]) for s, lang in gap_keys),
                  key=lambda g: (-g.open_consults, g.specialty_name, g.language))
    table = Table("gaps", _l("Gaps: open consults nobody can take within 24 h"),
                  ["specialty", "language", "open_consults", "blocked_volunteers", "fix"],
                  [_l("Specialty"), _l("Language"), _l("Open consults"),
                   _l("Volunteers who could, if unblocked"), _l("What would fix it")])
    table.rows = [(g.specialty, g.language, g.open_consults,
                   "; ".join(f"{name} ({reason})" for name, reason in g.blocked),
                   "unblock" if g.blocked else "recruit") for g in gaps]
    return gaps, table


# ---------------------------------------------------------------- speed


SPEED_METRICS = ("first_offer", "accepted", "answered", "closed")
SPEED_BREAKDOWNS = ("week", "urgency", "specialty")


def _period_start(filters: Filters) -> datetime:
    return clock.now() - timedelta(days=filters.days)


def _submitted_in_period(filters: Filters) -> list[Any]:
    return [Consult.submitted_at.is_not(None), Consult.submitted_at >= _period_start(filters),
            *consult_filters(filters)]


def _first_offers(filters: Filters) -> Any:
    """Per consult submitted in the period: its first offer's time and how many it had."""
    return (select(Offer.consult_id, func.min(Offer.created_at).label("first_at"),
                   func.count(Offer.id).label("offers"))
            .join(Consult, Consult.id == Offer.consult_id)
            .where(*_submitted_in_period(filters))
            .group_by(Offer.consult_id).subquery())


def urgency_text() -> Any:
    """The consult's urgency as its value ("urgent"), whatever the column stores."""
    return case(*[(Consult.urgency == u, literal(u.value)) for u in Urgency])


def _group_column(breakdown: str) -> Any:
    if breakdown == "week":
        return week_of(Consult.submitted_at)
    if breakdown == "urgency":
        return urgency_text()
    return Specialty.code


def speed_tables(filters: Filters) -> dict[str, Table]:
    """Hours from submission to first offer, acceptance, first answer and close: n, median and
    90th percentile, by week, urgency and specialty.

    One pass: the period's consults with their first offer are read once (a CTE, kept
    materialized on PostgreSQL), and one percentile query serves all three breakdowns.
    """
    first = _first_offers(filters)
    base = (select(*[_group_column(b).label(b) for b in SPEED_BREAKDOWNS],
                   hours_between(first.c.first_at, Consult.submitted_at).label("first_offer"),
                   *[hours_between(getattr(Consult, f"{m}_at"), Consult.submitted_at).label(m)
                     for m in SPEED_METRICS[1:]])
            .select_from(Consult)
            .outerjoin(first, first.c.consult_id == Consult.id)
            .join(Specialty, Specialty.id == Consult.specialty_id)
            .where(*_submitted_in_period(filters))
            .cte("speed_base").prefix_with("MATERIALIZED", dialect="postgresql"))
    parts = [select((literal(f"{b}:") + base.c[b]).label("grp"), literal(m).label("metric"),
                    base.c[m].label("value")).where(base.c[m].is_not(None))
             for b in SPEED_BREAKDOWNS for m in SPEED_METRICS]
    figures: dict[str, dict[str, tuple[int, float | None, float | None]]] = {}
    for row in db.session.execute(percentile_rows(union_all(*parts).subquery())):
        figures.setdefault(str(row.grp), {})[row.metric] = (
            int(row.n), _round(row.q0), _round(row.q1))
    counted = union_all(*[select((literal(f"{b}:") + base.c[b]).label("grp"))
                          for b in SPEED_BREAKDOWNS]).subquery()
    counts: dict[str, int] = {str(r[0]): int(r[1]) for r in db.session.execute(
        select(counted.c.grp, func.count()).group_by(counted.c.grp))}
    titles = {"week": _l("Speed by week (hours)"), "urgency": _l("Speed by urgency (hours)"),
              "specialty": _l("Speed by specialty (hours)")}
    group_headers = {"week": _l("Week of"), "urgency": _l("Urgency"),
                     "specialty": _l("Specialty")}
    metric_names = {"first_offer": _l("first offer"), "accepted": _l("acceptance"),
                    "answered": _l("first answer"), "closed": _l("close")}
    tables = {}
    for breakdown in SPEED_BREAKDOWNS:
        table = Table(f"speed_{breakdown}", titles[breakdown], [breakdown, "consults"],
                      [group_headers[breakdown], _l("Consults submitted")])
        for metric in SPEED_METRICS:
            table.columns += [f"{metric}_median_h", f"{metric}_p90_h"]
            table.headers += [_l("%(step)s, median", step=metric_names[metric]),
                              _l("%(step)s, 90th percentile", step=metric_names[metric])]
        prefix = f"{breakdown}:"
        for grp in sorted(key for key in counts if key.startswith(prefix)):
            cells: list[Any] = [grp[len(prefix):], counts[grp]]
            for metric in SPEED_METRICS:
                cells += figures.get(grp, {}).get(metric, (0, None, None))[1:]
            table.rows.append(tuple(cells))
        tables[table.key] = table
    return tables


def speed(filters: Filters, breakdown: str) -> Table:
    """One breakdown of `speed_tables`."""
    return speed_tables(filters)[f"speed_{breakdown}"]


def answer_deadlines() -> dict[str, int]:
    return dict(current_app.config.get("SITUATION_ANSWER_DEADLINE_MINUTES")
                or ANSWER_DEADLINE_MINUTES)


def within_deadline(filters: Filters) -> Table:
    """Per urgency: consults whose deadline has passed or that were answered, and the share
    answered within the deadline."""
    deadlines = answer_deadlines()
    now = clock.now()
    minutes = case(*[(Consult.urgency == u, deadlines[u.value]) for u in Urgency])
    answered_in_time = and_(
        Consult.answered_at.is_not(None),
        hours_between(Consult.answered_at, Consult.submitted_at) * 60 <= minutes)
    # Still open and not yet late: not decided either way.
    decided = or_(Consult.answered_at.is_not(None),
                  hours_between(literal(now, Consult.submitted_at.type), Consult.submitted_at)
                  * 60 > minutes)
    rows = db.session.execute(
        select(Consult.urgency, func.count(Consult.id),
               func.sum(case((answered_in_time, 1), else_=0)))
        .where(*_submitted_in_period(filters), Consult.status != ConsultStatus.CANCELLED,
               decided)
        .group_by(Consult.urgency)).all()
    by_urgency = {r[0].value: (int(r[1]), int(r[2] or 0)) for r in rows}
    table = Table("deadline", _l("Answered within the urgency's deadline"),
                  ["urgency", "deadline_hours", "consults", "answered_in_time", "share"],
                  [_l("Urgency"), _l("Deadline (hours)"), _l("Consults due"),
                   _l("Answered in time"), _l("Share")])
    for urgency in (Urgency.EMERGENCY, Urgency.URGENT, Urgency.ROUTINE):
        total, in_time = by_urgency.get(urgency.value, (0, 0))
        table.rows.append((urgency.value, _round(deadlines[urgency.value] / 60), total, in_time,
                           _share(in_time, total)))
    return table


def cascade(filters: Filters) -> Table:
    """Per urgency: offers per consult (median, p90, most), decline and expiry rates."""
    first = _first_offers(filters)
    depth = (select(urgency_text().label("grp"),
                    literal("depth").label("metric"), cast(first.c.offers, Float).label("value"))
             .join(first, first.c.consult_id == Consult.id)
             .where(*_submitted_in_period(filters)).subquery())
    depths = {row.grp: (int(row.n), _round(row.q0), _round(row.q1))
              for row in db.session.execute(percentile_rows(depth))}
    offers = db.session.execute(
        select(Consult.urgency, func.count(Offer.id), func.max(first.c.offers),
               func.sum(case((Offer.status == OfferStatus.DECLINED, 1), else_=0)),
               func.sum(case((Offer.status == OfferStatus.EXPIRED, 1), else_=0)))
        .join(Offer, Offer.consult_id == Consult.id)
        .join(first, first.c.consult_id == Consult.id)
        .where(*_submitted_in_period(filters)).group_by(Consult.urgency)).all()
    by_urgency = {r[0].value: r for r in offers}
    table = Table("cascade", _l("Cascade: offers per consult, declines and expiries"),
                  ["urgency", "consults_offered", "offers", "depth_median", "depth_p90",
                   "depth_max", "declined", "expired", "decline_rate", "expiry_rate"],
                  [_l("Urgency"), _l("Consults offered"), _l("Offers"),
                   _l("Offers per consult, median"), _l("Offers per consult, 90th percentile"),
                   _l("Most offers"), _l("Declined"), _l("Expired"), _l("Decline rate"),
                   _l("Expiry rate")])
    for urgency in (Urgency.EMERGENCY, Urgency.URGENT, Urgency.ROUTINE):
        n, median, p90 = depths.get(urgency.value, (0, None, None))
        row = by_urgency.get(urgency.value)
        total, most, declined, expired = ((int(row[1]), int(row[2]), int(row[3] or 0),
                                           int(row[4] or 0)) if row else (0, 0, 0, 0))
        table.rows.append((urgency.value, n, total, median, p90, most, declined, expired,
                           _share(declined, total), _share(expired, total)))
    return table


# ---------------------------------------------------------------- volunteers


LOAD_BUCKETS = ((0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 5, "3–5"), (6, 10, "6–10"),
                (11, None, "11+"))


def _volunteers(filters: Filters) -> list[Any]:
    return [User.role == Role.SPECIALIST, User.active.is_(True),
            SpecialistProfile.status == ProfileStatus.ACTIVE, *volunteer_filters(filters)]


def _accepted_per_volunteer(filters: Filters) -> Any:
    """Each active volunteer and the consults they accepted in the period."""
    counts = (select(Consult.specialist_id.label("user_id"), func.count().label("n"))
              .where(Consult.accepted_at >= _period_start(filters),
                     Consult.specialist_id.is_not(None))
              .group_by(Consult.specialist_id).subquery())
    return (select(User.id.label("user_id"), func.coalesce(counts.c.n, 0).label("n"))
            .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
            .outerjoin(counts, counts.c.user_id == User.id)
            .where(*_volunteers(filters)).subquery())


def load_distribution(filters: Filters) -> Table:
    per = _accepted_per_volunteer(filters)
    bucket = case(*[((per.c.n >= low) if high is None else per.c.n.between(low, high), label)
                    for low, high, label in LOAD_BUCKETS])
    counts: dict[str, int] = {str(r[0]): int(r[1]) for r in db.session.execute(
        select(bucket, func.count()).group_by(bucket))}
    table = Table("load", _l("Load: volunteers by consults accepted in the period"),
                  ["consults_accepted", "volunteers"],
                  [_l("Consults accepted"), _l("Volunteers")])
    table.rows = [(label, int(counts.get(label, 0))) for _, _, label in LOAD_BUCKETS]
    return table


def volunteer_summary(filters: Filters) -> Table:
    """Volunteers, consults accepted, the busiest 10 %'s share, idle 90 days, licences expiring."""
    per = _accepted_per_volunteer(filters)
    ranked = select(per.c.n, func.row_number().over(order_by=per.c.n.desc()).label("rank"),
                    func.count().over().label("total")).subquery()
    # The busiest 10 %: ceil(total / 10) volunteers, at least one (integer division).
    busiest = (ranked.c.total + 9) / 10
    total, accepted, top = db.session.execute(select(
        func.count(), func.sum(ranked.c.n),
        func.sum(case((ranked.c.rank <= busiest, ranked.c.n), else_=0)))).one()
    now = clock.now()
    recent = exists().where(Consult.specialist_id == User.id,
                            Consult.accepted_at >= now - timedelta(days=IDLE_DAYS))
    today = now.date()
    # Idle and expiring volunteers in one pass over the roster (one statement, not two).
    idle, expiring = db.session.execute(
        select(func.count(User.id).filter(~recent),
               func.count(User.id).filter(
                   SpecialistProfile.licence_expires_on >= today,
                   SpecialistProfile.licence_expires_on
                   <= today + timedelta(days=EXPIRY_WARNING_DAYS)))
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .where(*_volunteers(filters))).one()
    busiest_count = (int(total) + 9) // 10 if total else 0
    table = Table("volunteers", _l("Volunteers"),
                  ["volunteers", "consults_accepted", "busiest_10pct_volunteers",
                   "busiest_10pct_share", "idle_90_days", "licences_expiring_30_days"],
                  [_l("Active volunteers"), _l("Consults accepted in the period"),
                   _l("Busiest 10 %"), _l("Share carried by the busiest 10 %"),
                   _l("Idle for 90 days"), _l("Licences expiring within 30 days")])
    table.rows = [(int(total or 0), int(accepted or 0), busiest_count,
                   _share(top, accepted), int(idle or 0), int(expiring or 0))]
    return table


def expiring_licences(filters: Filters, limit: int = 20) -> Table:
    """Who to remind: licences that expire within 30 days, soonest first (a short list)."""
    today = clock.now().date()
    table = Table("expiring", _l("Licences expiring within 30 days"),
                  ["volunteer", "expires_on"], [_l("Volunteer"), _l("Expires on")])
    table.rows = [(r.name, r.licence_expires_on.isoformat()) for r in db.session.execute(
        select(User.name, SpecialistProfile.licence_expires_on)
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .where(*_volunteers(filters), SpecialistProfile.licence_expires_on >= today,
               SpecialistProfile.licence_expires_on
               <= today + timedelta(days=EXPIRY_WARNING_DAYS))
        .order_by(SpecialistProfile.licence_expires_on, User.name).limit(limit))]
    return table


def availability_by_zone(filters: Filters) -> Table:
    """Hours of availability per week, by the volunteers' time zone."""
    minutes = func.sum(AvailabilityWindow.end_minute - AvailabilityWindow.start_minute)
    rows = db.session.execute(
        select(User.timezone, func.count(distinct(User.id)), minutes)
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .join(AvailabilityWindow, AvailabilityWindow.user_id == User.id)
        .where(*_volunteers(filters)).group_by(User.timezone).order_by(minutes.desc()))
    table = Table("availability", _l("Availability hours per week by time zone"),
                  ["timezone", "volunteers", "hours_per_week"],
                  [_l("Time zone"), _l("Volunteers"), _l("Hours per week")])
    table.rows = [(r[0], int(r[1]), _round(int(r[2]) / 60)) for r in rows]
    return table


# ---------------------------------------------------------------- clinics and outcomes


def clinics_monthly(filters: Filters) -> Table:
    month = month_of(Consult.submitted_at)
    rows = db.session.execute(
        select(Clinic.name, month, func.count(Consult.id))
        .join(Clinic, Clinic.id == Consult.clinic_id)
        .where(*_submitted_in_period(filters))
        .group_by(Clinic.name, month).order_by(Clinic.name, month))
    table = Table("clinics", _l("Consults per clinic per month"),
                  ["clinic", "month", "consults"], [_l("Clinic"), _l("Month"), _l("Consults")])
    table.rows = [(r[0], r[1], int(r[2])) for r in rows]
    return table


def silent_clinics(filters: Filters) -> Table:
    """Clinics that submitted nothing for 30 days (with their last consult, if any)."""
    last = func.max(Consult.submitted_at)
    query = (select(Clinic.name, last)
             .outerjoin(Consult, Consult.clinic_id == Clinic.id)
             .group_by(Clinic.id, Clinic.name)
             .having(or_(last.is_(None), last < clock.now() - timedelta(days=SILENT_DAYS)))
             .order_by(Clinic.name))
    if filters.clinic_id is not None:
        query = query.where(Clinic.id == filters.clinic_id)
    table = Table("silent", _l("Clinics silent for 30 days"), ["clinic", "last_consult"],
                  [_l("Clinic"), _l("Last consult")])
    table.rows = [(r[0], r[1].isoformat() if r[1] else None) for r in db.session.execute(query)]
    return table


def outcomes(filters: Filters, by: str) -> Table:
    """Closed consults by specialty or clinic: outcome reported, the survey's answers, rating."""
    group = Specialty.code if by == "specialty" else Clinic.name

    def count_if(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = db.session.execute(
        select(group, func.count(Consult.id),
               count_if(Consult.outcome.is_not(None)),
               count_if(Consult.referral_avoided.is_not(None)),
               count_if(Consult.referral_avoided.is_(True)),
               count_if(Consult.course_changed.is_not(None)),
               count_if(Consult.course_changed.is_(True)),
               func.avg(Consult.rating))
        .join(Specialty, Specialty.id == Consult.specialty_id)
        .join(Clinic, Clinic.id == Consult.clinic_id)
        .where(Consult.status == ConsultStatus.CLOSED, Consult.closed_at.is_not(None),
               Consult.closed_at >= _period_start(filters), *consult_filters(filters))
        .group_by(group).order_by(group))
    key = f"outcomes_{by}"
    title = (_l("Outcomes by specialty") if by == "specialty" else _l("Outcomes by clinic"))
    table = Table(key, title,
                  [by, "closed", "outcome_reported", "referral_answered", "referral_avoided",
                   "referral_avoided_share", "course_answered", "course_changed",
                   "course_changed_share", "usefulness_mean"],
                  [_l("Specialty") if by == "specialty" else _l("Clinic"), _l("Closed"),
                   _l("Outcome reported"), _l("Answered: referral avoided?"),
                   _l("Referral or evacuation avoided"), _l("Share avoided"),
                   _l("Answered: course changed?"), _l("Course of action changed"),
                   _l("Share changed"), _l("Usefulness (1–5), mean")])
    table.rows = [(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0),
                   _share(r[4], r[3]), int(r[5] or 0), int(r[6] or 0), _share(r[6], r[5]),
                   _round(r[7])) for r in rows]
    return table


# ---------------------------------------------------------------- the room


def clinic_choices() -> list[tuple[int, str]]:
    return [(r.id, r.name) for r in db.session.execute(
        select(Clinic.id, Clinic.name).order_by(Clinic.name))]


@dataclass
class Room:
    filters: Filters
    heat: HeatMap
    gaps: list[Gap]
    tables: dict[str, Table]
    as_of: datetime = field(default_factory=clock.now)  # when the figures were computed
    updating: bool = False  # newer figures are being computed: the page asks again shortly
    # The figures' HTML by language, made by the first reader of each (views._figures_html);
    # shared by the copies `room()` marks as updating.
    rendered: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def table_builders() -> dict[str, Any]:
    """Every table by key, each a function of the filters (CSV and JSON ask for one)."""
    return {
        "demand": lambda f: demand_supply(f).table,
        "gaps": lambda f: gap_list(demand_supply(f))[1],
        **{f"speed_{b}": (lambda f, b=b: speed(f, b)) for b in SPEED_BREAKDOWNS},
        "deadline": within_deadline,
        "cascade": cascade,
        "volunteers": volunteer_summary,
        "load": load_distribution,
        "expiring": expiring_licences,
        "availability": availability_by_zone,
        "clinics": clinics_monthly,
        "silent": silent_clinics,
        "outcomes_specialty": lambda f: outcomes(f, "specialty"),
        "outcomes_clinic": lambda f: outcomes(f, "clinic"),
    }


def compute_room(filters: Filters) -> Room:
    """Every figure of the room for these filters, from the database."""
    names = specialty_names()  # read once for the heat map and the gap list
    heat = demand_supply(filters, names)
    gaps, gap_table = gap_list(heat, names)
    tables = {"demand": heat.table, "gaps": gap_table, **speed_tables(filters)}
    for key, build in table_builders().items():
        if key not in tables:
            tables[key] = build(filters)
    return Room(filters, heat, gaps, tables)


# Every coordinator's page re-fetches on each change, and most views repeat the last one:
# the figures are computed once per change of the data (and at least every
# SITUATION_CACHE_SECONDS, for what time and the roster change), per process. At 100,000
# consults a computation takes seconds, so no request waits for one when there are earlier
# figures for its filters: it gets those (with their time, `as_of`, and `updating` set) while
# one background thread computes the new ones, and the page asks again a moment later (the
# room's script). Only the first request for some filters in a process computes in line.
_CACHE: OrderedDict[tuple[Any, ...], Figures] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_COMPUTING: dict[tuple[Any, ...], threading.Lock] = {}  # the key whose figures are being made
CACHE_ENTRIES = 32


@dataclass(frozen=True)
class Figures:
    """A cached room: what data it was computed from, and when (monotonic clock)."""

    version: tuple[Any, ...]
    computed: float
    room: Room


def cache_seconds() -> float:
    """How long figures are reused (0: never; tests compute afresh unless they set it)."""
    default = 0 if current_app.testing else 15
    return float(current_app.config.get("SITUATION_CACHE_SECONDS", default))


def data_version() -> tuple[Any, ...]:
    """Changes whenever a consult changes (status, offers, outcome) or an offer is made:
    two index lookups."""
    return tuple(db.session.execute(select(
        select(func.max(Consult.updated_at)).scalar_subquery(),
        select(func.max(Offer.id)).scalar_subquery())).one())


def _store(key: tuple[Any, ...], figures: Figures) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = figures
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_ENTRIES:
            _CACHE.popitem(last=False)


def _compute(key: tuple[Any, ...], filters: Filters, version: tuple[Any, ...]) -> Figures:
    """Compute and cache the figures of `version` (read before computing: a change made
    while they are computed makes them out of date at once, never hides)."""
    figures = Figures(version, time.monotonic(), compute_room(filters))
    _store(key, figures)
    return figures


def _refresh_in_background(key: tuple[Any, ...], filters: Filters,
                           version: tuple[Any, ...]) -> None:
    """One background computation per key at a time; later askers keep the last figures."""
    with _CACHE_LOCK:
        lock = _COMPUTING.setdefault(key, threading.Lock())
    if not lock.acquire(blocking=False):
        return  # already being computed
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        try:
            with app.app_context():
                try:
                    _compute(key, filters, version)
                except Exception:  # noqa: BLE001 - the last figures stay; the next ask retries
                    logger.exception("situation room figures not computed")
                finally:
                    db.session.remove()
        finally:
            _release(key, lock)

    try:
        threading.Thread(target=run, name="situation-figures", daemon=True).start()
    except BaseException:
        _release(key, lock)
        raise


def _release(key: tuple[Any, ...], lock: threading.Lock) -> None:
    with _CACHE_LOCK:
        if _COMPUTING.get(key) is lock:
            del _COMPUTING[key]
    lock.release()


def _first_figures(key: tuple[Any, ...], filters: Filters,
                   version: tuple[Any, ...]) -> Figures:
    """Nothing cached for these filters: one request computes, the others asking at the
    same time wait for its figures instead of computing them too."""
    with _CACHE_LOCK:
        lock = _COMPUTING.setdefault(key, threading.Lock())
    with lock:
        try:
            with _CACHE_LOCK:
                again = _CACHE.get(key)
            return again if again is not None else _compute(key, filters, version)
        finally:
            with _CACHE_LOCK:
                if _COMPUTING.get(key) is lock:
                    del _COMPUTING[key]


def room(filters: Filters) -> Room:
    """Every figure of the room for these filters, reused while the data has not changed;
    out-of-date figures are served (marked `updating`) while new ones are computed."""
    seconds = cache_seconds()
    if seconds <= 0:
        return compute_room(filters)
    key = (filters, _dialect())
    version = data_version()
    with _CACHE_LOCK:
        figures = _CACHE.get(key)
        if figures is not None:
            _CACHE.move_to_end(key)
    if figures is None:
        figures = _first_figures(key, filters, version)
    if figures.version == version and time.monotonic() - figures.computed < seconds:
        return figures.room
    _refresh_in_background(key, filters, version)
    return replace(figures.room, updating=True)


def one_table(key: str, filters: Filters) -> Table:
    """One figure (CSV, JSON): from the cached room when there is one, else on its own."""
    builders = table_builders()
    if key not in builders:
        raise InvalidInput(_("Unknown figure."))
    if cache_seconds() > 0:
        return room(filters).tables[key]
    return builders[key](filters)
