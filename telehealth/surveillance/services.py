"""Syndromic surveillance: counts in SQL, detection, alerts and their workflow, reports, scope."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from flask import current_app, has_request_context, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)

from telehealth import clock, signals, transaction
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.clinics.models import Clinic
from telehealth.consults.models import Consult, ConsultStatus, Sex
from telehealth.db_types import known
from telehealth.diagnoses.models import ConsultDiagnosis
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.notifications.services import notify
from telehealth.places.models import Area
from telehealth.places.services import AreaTree, load_tree
from telehealth.realtime import key_prefix
from telehealth.surveillance import detectors
from telehealth.surveillance.models import (
    ALERT_TRANSITIONS,
    OPEN_STAGES,
    Alert,
    AlertNote,
    AlertOutcome,
    AlertStage,
    OfficerArea,
    ShareLink,
    Syndrome,
    WeeklyCount,
    WeeklyReport,
)

logger = logging.getLogger(__name__)

# Built-in syndromes (WHO EWARS in a box, 2012; WHO AFRO IDSR technical guidelines, 3rd ed.,
# 2019). Codes are ICD-10 prefixes without dots. A deployment edits them or adds its own.
# The default rule of each is the one bench/surveillance.py shows keeps false alarms at or
# under 1 % of series-weeks at the syndrome's usual weekly rate in a district and, within
# that, finds the most doublings within a week:
# - syndromes of eight cases a week or more (AWD, ILI/SARI): the count thresholds on the week
#   and on the sum of the last two weeks around a seasonal baseline, a Serfling cyclic
#   regression on the series' past (detectors.count_seasonal: against the flat baseline of
#   count_two_weeks, AWD 73 % of doublings found instead of 53 % over three simulations, ILI
#   94 % instead of Farrington flexible's 87 %, false alarms under 1 % on each); with less
#   than a year of history count_two_weeks stands in, never asking for fewer than `threshold`;
# - syndromes of a few cases a week or fewer: the count-aware threshold from the series' own
#   past (flat: too few cases to fit a season), which never asks for fewer than `threshold`
#   cases; for bloody diarrhoea and meningitis on the week and on the sum of the last two
#   weeks (detectors.count_two_weeks: more doublings found at the same false alarms; the
#   seasonal baseline passed 1 % on one simulation there), for jaundice and measles on the
#   week alone (detectors.count_quantile: there the sum found no more, or passed 1 % on one
#   of the simulations);
# - notifiable syndromes whose background is near zero (AFP, VHF): one case is an alert (IDSR).
# Below a few cases a week "twice the baseline" cannot be told from noise within a week at 1 %
# false alarms by any rule (the bench's oracles); there the rule keeps the false alarms and
# alerts on the cases themselves. `threshold` also stands in while a series is too short.
# A running deployment moves with the defaults only where nobody edited the syndrome (the data
# migrations 7a3c9e51d204 and 9b2e4d7a6c13).
DEFAULT_SYNDROMES: list[tuple[str, Any, str, str, int]] = [
    ("awd", _l("Acute watery diarrhoea"), "A00,A08,A09,K529", "count_seasonal", 5),
    ("bloody_diarrhoea", _l("Bloody diarrhoea"), "A03,A040,A041,A042,A043,A060,A071",
     "count_two_weeks", 3),
    ("ili_sari", _l("Influenza-like illness / SARI"), "J09,J10,J11,J12,J13,J14,J15,J16,J17,"
     "J18,J22,U07", "count_seasonal", 10),
    ("afp", _l("Acute flaccid paralysis"), "A80,G610,G82,G834", "fixed", 1),
    ("measles_rash", _l("Measles-like rash"), "B05,B06,B09", "count_quantile", 1),
    ("acute_jaundice", _l("Acute jaundice"), "B15,B16,B17,B19,R17", "count_quantile", 3),
    ("meningitis", _l("Suspected meningitis"), "A39,A87,G00,G01,G02,G03", "count_two_weeks",
     2),
    ("vhf", _l("Viral haemorrhagic fever"), "A924,A95,A96,A972,A98,A99", "fixed", 1),
]
BUILT_IN_LABELS = {code: label for code, label, _p, _d, _t in DEFAULT_SYNDROMES}
DETECTOR_LABELS: dict[str, Any] = {
    "fixed": _l("Fixed threshold"),
    "double_mean": _l("Double the mean of the previous 3 weeks"),
    "ears_c1": _l("EARS C1"),
    "ears_c2": _l("EARS C2"),
    "ears_c3": _l("EARS C3"),
    "farrington": _l("Farrington flexible"),
    "nb_cusum": _l("Negative binomial CUSUM"),
    "count_quantile": _l("Count threshold from the series' own past (under 1 % a week)"),
    "count_two_weeks": _l("Count thresholds on the week and on the last two weeks, from the "
                          "series' own past (under 1 % a week)"),
    "count_seasonal": _l("Count thresholds on the week and on the last two weeks, around the "
                         "season of the series' own past (under 1 % a week)"),
}
STAGE_LABELS: dict[AlertStage, Any] = {
    AlertStage.VERIFICATION: _l("Verification"),
    AlertStage.MONITORING: _l("Monitoring"),
    AlertStage.RISK_ASSESSMENT: _l("Risk assessment"),
    AlertStage.CHARACTERISATION: _l("Risk characterisation"),
    AlertStage.CLOSED: _l("Closed"),
    AlertStage.DISCARDED: _l("Discarded"),
}
OUTCOME_LABELS: dict[AlertOutcome, Any] = {
    AlertOutcome.RESPONSE: _l("Response started"),
    AlertOutcome.NO_RESPONSE: _l("No response needed"),
    AlertOutcome.REFERRED: _l("Referred to another authority"),
}
# Hours each open stage may take before its clock runs out (verification: Sphere's 24 h).
STAGE_HOURS = {AlertStage.VERIFICATION: 24, AlertStage.MONITORING: 7 * 24,
               AlertStage.RISK_ASSESSMENT: 48, AlertStage.CHARACTERISATION: 48}
# Weeks a late consult or report can still change and so raise an alert for.
LOOKBACK_WEEKS = 2
# A weekly report is on time until this many days after its week ends.
REPORT_DUE_DAYS = 2
SUPPRESS_BELOW = 5


def syndrome_label(syndrome: Syndrome) -> str:
    """The built-in syndromes in the reader's language; a deployment's own as they named them."""
    label = BUILT_IN_LABELS.get(syndrome.code)
    return str(label) if label is not None else syndrome.name


def risk_level(likelihood: int, consequence: int) -> Any:
    """WHO rapid risk assessment matrix (2012): likelihood × consequence → level."""
    score = likelihood * consequence
    if score >= 15:
        return _l("Very high risk")
    if score >= 8:
        return _l("High risk")
    if score >= 4:
        return _l("Moderate risk")
    return _l("Low risk")


def ensure_default_syndromes() -> list[Syndrome]:
    """Create the built-in syndromes that are missing (a fresh deployment, the demo)."""
    have = set(db.session.scalars(select(Syndrome.code)))
    for code, label, prefixes, detector, threshold in DEFAULT_SYNDROMES:
        if code not in have:
            with force_locale("en"):
                name = str(label)
            db.session.add(Syndrome(code=code, name=name, icd10_prefixes=prefixes,
                                    detector=detector, threshold=threshold))
    db.session.flush()
    return active_syndromes()


def active_syndromes() -> list[Syndrome]:
    return list(db.session.scalars(select(Syndrome).where(Syndrome.active.is_(True))
                                   .order_by(Syndrome.id)))


def normalise_codes(text: str) -> str:
    """'A00, a09.0 ,K52.9' → 'A00,A090,K529'; refuses what cannot be an ICD-10 code."""
    codes: list[str] = []
    for raw in text.replace(";", ",").split(","):
        code = raw.strip().upper().replace(".", "")
        if not code:
            continue
        if not (2 <= len(code) <= 7 and code[0].isalpha() and code[1:].isalnum()
                and code[1:3].isdigit() if len(code) >= 3 else False):
            raise InvalidInput(_("%(code)s is not an ICD-10 code or prefix.", code=raw.strip()))
        codes.append(code)
    if not codes:
        raise InvalidInput(_("A syndrome needs at least one ICD-10 code."))
    return ",".join(dict.fromkeys(codes))


def save_syndrome(syndrome: Syndrome | None, code: str, name: str, codes: str, detector: str,
                  threshold: int, active: bool) -> Syndrome:
    """Create or edit a syndrome; every code must name at least one ICD-10 category."""
    prefixes = normalise_codes(codes)
    for prefix in prefixes.split(","):
        if not _is_known_prefix(prefix):
            raise InvalidInput(_("%(code)s matches no ICD-10 code.", code=prefix))
    if detector not in detectors.DETECTORS:
        raise InvalidInput(_("Choose a detector from the list."))
    if not 1 <= threshold <= 10_000:
        raise InvalidInput(_("The threshold is a whole number from 1 to 10,000."))
    code, name = code.strip(), name.strip()
    if not code or not name or len(code) > 40 or len(name) > 160:
        raise InvalidInput(_("A syndrome needs a code (≤ 40) and a name (≤ 160)."))
    if syndrome is None:
        if db.session.scalar(select(Syndrome.id).where(Syndrome.code == code)):
            raise InvalidInput(_("A syndrome with the code %(code)s exists already.", code=code))
        syndrome = Syndrome(code=code)
        db.session.add(syndrome)
    syndrome.name, syndrome.icd10_prefixes = name, prefixes
    syndrome.detector, syndrome.threshold, syndrome.active = detector, threshold, active
    db.session.flush()
    record("syndrome.save", obj=syndrome, codes=prefixes, detector=detector)
    return syndrome


def _is_known_prefix(prefix: str) -> bool:
    """True when some code of the WHO ICD-10 list starts with ``prefix`` (e.g. 'A0', 'K529')."""
    from telehealth.diagnoses.services import _index

    return any(code.startswith(prefix) for code, _title, _text in _index())


# --- epidemiological weeks ----------------------------------------------------------------------


def week_system() -> str:
    """'iso' (weeks from Monday, ISO 8601) or 'mmwr' (from Sunday, CDC), a deployment setting."""
    value = str(current_app.config.get("SURVEILLANCE_EPI_WEEKS", "iso")).lower()
    return "mmwr" if value == "mmwr" else "iso"


def _first_weekday(system: str) -> int:
    return 6 if system == "mmwr" else 0  # Python weekday(): Monday 0 … Sunday 6


def week_start(day: date, system: str) -> date:
    return day - timedelta(days=(day.weekday() - _first_weekday(system)) % 7)


def epi_week(start: date, system: str) -> tuple[int, int]:
    """(year, week) of the week starting on ``start``: week 1 holds 4 January (ISO and MMWR)."""
    year = (start + timedelta(days=3)).year
    first = week_start(date(year, 1, 4), system)
    return year, (start - first).days // 7 + 1


def week_label(start: date, system: str) -> str:
    year, week = epi_week(start, system)
    return f"{year}-W{week:02d}"


def parse_week(text: str, system: str) -> date:
    """'2026-W47' (or '2026-47') → the first day of that epidemiological week."""
    try:
        year_text, week_text = text.strip().upper().replace("-W", "-").split("-")
        year, week = int(year_text), int(week_text)
    except ValueError as exc:
        raise InvalidInput(_("Write the week as 2026-W47.")) from exc
    if not 1900 < year < 2200 or not 1 <= week <= 53:
        raise InvalidInput(_("Write the week as 2026-W47."))
    start = week_start(date(year, 1, 4), system) + timedelta(weeks=week - 1)
    if epi_week(start, system) != (year, week):
        raise InvalidInput(_("%(year)d has no week %(week)d.", year=year, week=week))
    return start


def _week_start_sql(local: Any, system: str) -> ColumnElement[Any]:
    """PostgreSQL: the first day of the epidemiological week of a local timestamp."""
    first = 0 if system == "mmwr" else 1  # SQL day numbers: Sunday 0
    dow = cast(func.extract("dow", local), Integer)
    return cast(local, Date) - (dow + (7 - first)) % 7


def deployment_zone() -> str:
    """The deployment's time zone (SURVEILLANCE_TIMEZONE, else the default display zone)."""
    return str(current_app.config.get("SURVEILLANCE_TIMEZONE")
               or current_app.config.get("BABEL_DEFAULT_TIMEZONE") or "UTC")


def clinic_zone(name: str | None) -> str:
    """A clinic's own time zone; the deployment's when it has none (the column's default
    'UTC' means nobody set it) or an unknown one."""
    if name and name != "UTC":
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("surveillance: unknown time zone %r, the deployment's used", name)
    return deployment_zone()


def seen_on(seen_at: datetime, zone: str) -> date:
    """The day a consult was seen, in its clinic's time zone: a consult at 23:30 local time on
    a Saturday belongs to that Saturday's week, whatever the date is in UTC."""
    return seen_at.astimezone(ZoneInfo(zone)).date()


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- counts -------------------------------------------------------------------------------------


@dataclass
class Counts:
    """Cases by syndrome, clinic and week (clinics carry their area)."""

    by_clinic: dict[tuple[int, int, date], int] = field(default_factory=dict)
    clinic_area: dict[int, int] = field(default_factory=dict)

    def by_area(self, tree: AreaTree) -> dict[tuple[int, int], dict[date, int]]:
        """(syndrome, area) → week → cases, every area including those above the clinics'."""
        series: dict[tuple[int, int], dict[date, int]] = defaultdict(lambda: defaultdict(int))
        for (syndrome_id, clinic_id, week), cases in self.by_clinic.items():
            for area_id in tree.ancestors(self.clinic_area[clinic_id]):
                series[(syndrome_id, area_id)][week] += cases
        return series


def count_cases(system: str, since: date | None = None, clinic_id: int | None = None,
                syndrome_ids: Iterable[int] | None = None) -> Counts:
    """Coded consults (each once per syndrome) and weekly reports, by syndrome × clinic × week.

    A consult counts in the week of the day it was seen (created) in its clinic's time zone
    (the deployment's when the clinic has none), in SQL on PostgreSQL; SQLite, which knows no
    time zones, returns the consults' times and Python buckets them. A clinic's weekly report
    for a week stands instead when it reports more cases than the platform saw (the report
    covers every patient, not only those who needed a consult).
    """
    counts = Counts()
    wanted = set(syndrome_ids) if syndrome_ids is not None else None
    syndromes = select(Syndrome.id, Syndrome.icd10_prefixes).where(Syndrome.active.is_(True))
    prefixes = [(sid, p) for sid, text in db.session.execute(syndromes)
                if wanted is None or sid in wanted for p in text.split(",") if p]
    zones = {clinic: clinic_zone(zone) for clinic, zone in db.session.execute(
        select(Clinic.id, Clinic.timezone).where(Clinic.area_id.is_not(None)))}
    if prefixes and zones:
        # (syndrome, prefix) pairs as a derived table: a code may belong to two syndromes, and
        # count(DISTINCT consult) counts a consult once per syndrome however many codes match.
        pairs = union_all(*[select(literal(sid).label("syndrome_id"), literal(p).label("prefix"))
                            for sid, p in prefixes]).subquery("syndrome_prefixes")
        query = (select(pairs.c.syndrome_id, Consult.clinic_id)
                 .join(ConsultDiagnosis, ConsultDiagnosis.consult_id == Consult.id)
                 .join(pairs, ConsultDiagnosis.code.like(pairs.c.prefix + "%"))
                 .join(Clinic, Clinic.id == Consult.clinic_id)
                 .where(Clinic.area_id.is_not(None), Consult.status != ConsultStatus.CANCELLED))
        if since is not None:
            # A day early: the local day may begin before UTC's; the weeks before `since`
            # are dropped below.
            query = query.where(Consult.created_at >= datetime.combine(
                since - timedelta(days=1), time(), UTC))
        if clinic_id is not None:
            query = query.where(Consult.clinic_id == clinic_id)
        if db.session.get_bind().dialect.name == "postgresql":
            zone_table = union_all(*[select(literal(cid).label("clinic_id"),
                                            literal(zone).label("zone"))
                                     for cid, zone in zones.items()]).subquery("clinic_zones")
            local = func.timezone(zone_table.c.zone, func.timezone("UTC", Consult.created_at))
            week = _week_start_sql(local, system).label("week")
            grouped = (query.add_columns(week, func.count(func.distinct(Consult.id)))
                       .join(zone_table, zone_table.c.clinic_id == Consult.clinic_id)
                       .group_by(pairs.c.syndrome_id, Consult.clinic_id, week))
            for syndrome_id, clinic, week_value, n in db.session.execute(grouped):
                counts.by_clinic[(int(syndrome_id), clinic, _as_date(week_value))] = int(n)
        else:
            rows = query.add_columns(Consult.id, Consult.created_at).distinct()
            for syndrome_id, clinic, _consult, seen_at in db.session.execute(rows):
                key = (int(syndrome_id), clinic,
                       week_start(seen_on(seen_at, zones[clinic]), system))
                counts.by_clinic[key] = counts.by_clinic.get(key, 0) + 1
        if since is not None:
            first = week_start(since, system)
            counts.by_clinic = {k: n for k, n in counts.by_clinic.items() if k[2] >= first}
    reports = (select(WeeklyCount.syndrome_id, WeeklyReport.clinic_id, WeeklyReport.week_start,
                      WeeklyCount.cases)
               .join(WeeklyReport, WeeklyReport.id == WeeklyCount.report_id)
               .join(Clinic, Clinic.id == WeeklyReport.clinic_id)
               .where(Clinic.area_id.is_not(None)))
    if since is not None:
        reports = reports.where(WeeklyReport.week_start >= since)
    if clinic_id is not None:
        reports = reports.where(WeeklyReport.clinic_id == clinic_id)
    if wanted is not None:
        reports = reports.where(WeeklyCount.syndrome_id.in_(wanted))
    for syndrome_id, clinic, start, cases_reported in db.session.execute(reports):
        key = (syndrome_id, clinic, week_start(start, system))
        counts.by_clinic[key] = max(counts.by_clinic.get(key, 0), cases_reported)
    counts.clinic_area = {clinic: area for clinic, area in db.session.execute(
        select(Clinic.id, Clinic.area_id).where(Clinic.area_id.is_not(None))) if area is not None}
    return counts


def weeks_between(first: date, last: date) -> list[date]:
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]


def series_for(by_week: dict[date, int], weeks: list[date]) -> list[int]:
    return [by_week.get(week, 0) for week in weeks]


# --- detection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    syndrome_id: int
    area_id: int
    week: date
    detector: str
    observed: int
    expected: float | None
    upper: float | None
    evidence: dict[str, Any]


def _number(value: float) -> float | None:
    return None if value != value else round(float(value), 6)  # nan → None


def evaluate(syndrome: Syndrome, series: list[int], weeks: list[date],
             lookback: int = LOOKBACK_WEEKS) -> list[tuple[int, str, detectors.Detection]]:
    """Run the syndrome's detector; (index of each alarming recent week, detector, result)."""
    start = max(0, len(series) - lookback)
    name, result = detectors.detect(syndrome.detector, series, syndrome.threshold, start)
    return [(i, name, result) for i in range(start, len(series)) if result.alarm[i]]


def find_signals(now: datetime | None = None, lookback: int = LOOKBACK_WEEKS,
                 area_id: int | None = None,
                 syndrome_id: int | None = None) -> tuple[list[Signal], dict[str, float]]:
    """Every (syndrome, area) series from the first data week to this week: recent alarms.

    With `area_id` and `syndrome_id` (what changed), only that syndrome's series of the area
    and the areas above it, whose counts include it, are judged.
    """
    system = week_system()
    today = seen_on(now or clock.now(), deployment_zone())
    syndromes = {s.id: s for s in active_syndromes()
                 if syndrome_id is None or s.id == syndrome_id}
    tree = load_tree()
    chain = set(tree.ancestors(area_id)) if area_id is not None else None
    counts = count_cases(system, syndrome_ids=None if syndrome_id is None else [syndrome_id])
    if not counts.by_clinic:
        return [], {"series": 0}
    data_weeks = [week for _s, _c, week in counts.by_clinic]
    weeks = weeks_between(min(data_weeks), max(week_start(today, system), max(data_weeks)))
    signals: list[Signal] = []
    by_area = counts.by_area(tree)
    judged = 0
    for (series_syndrome, series_area), by_week in by_area.items():
        syndrome = syndromes.get(series_syndrome)
        if syndrome is None or (chain is not None and series_area not in chain):
            continue
        judged += 1
        series = series_for(by_week, weeks)
        found = evaluate(syndrome, series, weeks, lookback)
        if found:
            # The evidence shows the twelve weeks up to the alarm with the detector's expected
            # count and bound in each (with a seasonal baseline they move with the season), but
            # only the recent weeks were judged: judge the rest again, for alarming series only.
            _name, shown = detectors.detect(found[0][1], series, syndrome.threshold,
                                            max(0, found[0][0] - 11))
        for index, name, result in found:
            tail = slice(max(0, index - 11), index + 1)
            evidence = {
                "weeks": [week_label(w, system) for w in weeks[tail]],
                "observed": series[tail],
                "expected": [_number(v) for v in shown.expected[tail]],
                "upper": [_number(v) for v in shown.upper[tail]],
                "detector": name,
                "chosen": syndrome.detector,
                "history_weeks": index + 1,
            }
            if result.two_week_alarm is not None and index >= 1:
                evidence["two_weeks"] = _two_week_evidence(result, series, weeks, index, system)
            signals.append(Signal(series_syndrome, series_area, weeks[index], name,
                                  series[index], _number(result.expected[index]),
                                  _number(result.upper[index]), evidence))
    return signals, {"series": judged}


def _two_week_evidence(result: detectors.Detection, series: list[int], weeks: list[date],
                       index: int, system: str) -> dict[str, Any]:
    """The sum of the week and the one before, as a detector that tests it saw it."""
    assert result.two_week_expected is not None and result.two_week_upper is not None
    assert result.two_week_alarm is not None
    return {"weeks": [week_label(weeks[index - 1], system), week_label(weeks[index], system)],
            "observed": series[index - 1] + series[index],
            "expected": _number(result.two_week_expected[index]),
            "upper": _number(result.two_week_upper[index]),
            "alarmed": bool(result.two_week_alarm[index]),
            "week_alarmed": bool(series[index] > result.upper[index])}


def run_detection(now: datetime | None = None, area_id: int | None = None,
                  syndrome_id: int | None = None) -> list[Alert]:
    """Look at every series again and open an alert for each new signal (the job's entry).

    Safe to run at any time and more than once: an alert exists once per syndrome, area and
    week. It flushes; the caller (CLI, job runner, request) commits, which sends the
    notifications.
    """
    signals, _stats = find_signals(now, area_id=area_id, syndrome_id=syndrome_id)
    opened: list[Alert] = []
    for signal in sorted(signals, key=lambda s: s.week):
        # One alert per signal week, and none while an alert of the weeks just before is
        # still open: the same event, already in somebody's hands.
        exists = db.session.scalar(select(Alert.id).where(
            Alert.syndrome_id == signal.syndrome_id, Alert.area_id == signal.area_id,
            or_(Alert.week_start == signal.week,
                and_(Alert.stage.in_(OPEN_STAGES),
                     Alert.week_start >= signal.week - timedelta(weeks=LOOKBACK_WEEKS),
                     Alert.week_start <= signal.week))))
        if exists is None:
            opened.append(_open_alert(signal, now or clock.now()))
    if opened:
        logger.info("surveillance: %d new alert(s)", len(opened))
    return opened


def _open_alert(signal: Signal, now: datetime) -> Alert:
    alert = Alert(syndrome_id=signal.syndrome_id, area_id=signal.area_id, week_start=signal.week,
                  detector=signal.detector, observed=signal.observed, expected=signal.expected,
                  upper_bound=signal.upper, evidence=json.dumps(signal.evidence),
                  stage=AlertStage.VERIFICATION, created_at=now, updated_at=now,
                  due_at=now + timedelta(hours=STAGE_HOURS[AlertStage.VERIFICATION]))
    db.session.add(alert)
    db.session.flush()
    record("alert.open", obj=alert, detector=signal.detector, observed=signal.observed)
    _notify_officers(alert)
    return alert


def alert_url(alert: Alert, external: bool = True) -> str:
    if has_request_context():
        return url_for("surveillance.alert_detail", alert_id=alert.id, _external=external)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/") if external else ""
    return f"{base}/surveillance/alerts/{alert.id}"


def officers_for(area_id: int, tree: AreaTree | None = None) -> list[User]:
    """Active surveillance officers responsible for the area or for an area above it."""
    chain = (tree or load_tree()).ancestors(area_id)
    return list(db.session.scalars(
        select(User).join(OfficerArea, OfficerArea.user_id == User.id)
        .where(OfficerArea.area_id.in_(chain), User.active.is_(True),
               User.role == Role.SURVEILLANCE_OFFICER).distinct()))


def _notify_officers(alert: Alert) -> None:
    from telehealth.i18n.formatting import local_deadline

    area = db.session.get(Area, alert.area_id)
    syndrome = db.session.get(Syndrome, alert.syndrome_id)
    assert area is not None and syndrome is not None
    system = week_system()
    # A rise the week alone did not show is told as the two weeks' sum that did.
    pair = json.loads(alert.evidence or "{}").get("two_weeks")
    if pair is not None and (not pair["alarmed"] or pair["week_alarmed"]):
        pair = None
    for officer in officers_for(alert.area_id):
        locale = officer.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
        due = local_deadline(alert.due_at, locale, officer.timezone) if alert.due_at else ""
        payload = {"alert_id": alert.id, "reference": alert.reference, "area": area.name,
                   "url": alert_url(alert, external=False), "observed": alert.observed,
                   "week": week_label(alert.week_start, system), "due": due}

        def subject(syndrome: Syndrome = syndrome) -> str:
            return _("Alert %(ref)s: %(syndrome)s in %(area)s", ref=alert.reference,
                     syndrome=syndrome_label(syndrome), area=area.name)

        def body(syndrome: Syndrome = syndrome, due: str = due) -> str:
            if pair is not None:
                return _("%(count)d case(s) of %(syndrome)s in %(area)s in weeks %(first)s "
                         "and %(last)s together. Verify by %(due)s: %(url)s",
                         count=pair["observed"], syndrome=syndrome_label(syndrome),
                         area=area.name, first=pair["weeks"][0], last=pair["weeks"][1],
                         due=due, url=alert_url(alert))
            return _("%(count)d case(s) of %(syndrome)s in %(area)s in week %(week)s. "
                     "Verify by %(due)s: %(url)s", count=alert.observed,
                     syndrome=syndrome_label(syndrome), area=area.name,
                     week=week_label(alert.week_start, system), due=due, url=alert_url(alert))

        # notify() calls subject and body under the officer's locale: the syndrome's name too.
        notify(officer, "alert.new", payload, subject=subject, body=body)


# --- detection right after data changes -----------------------------------------------------------

# A queued detection run for a (area, syndrome) series covers every change committed before it
# starts, so a change asks for none while one is queued: a burst of codes runs it once. The
# mark lives in Redis when the deployment has one (every process sees it), in this process
# when jobs run here; it lapses after this long should its run be lost.
DETECT_PENDING_SECONDS = 900
_pending_here: set[tuple[int, int]] = set()
_pending_lock = threading.Lock()


def detection_wanted(area_id: int | None, syndrome_ids: Iterable[int]) -> None:
    """Once this transaction commits, have these syndromes' series of the area (and of the
    areas above it) judged again, besides the periodic run. Once per transaction each."""
    if area_id is None:
        return
    for syndrome_id in sorted(set(syndrome_ids)):
        transaction.after_commit(partial(_ask_for_detection, area_id, syndrome_id),
                                 key=f"surveillance-detect:{area_id}:{syndrome_id}")


def _ask_for_detection(area_id: int, syndrome_id: int) -> None:
    if _mark_pending(area_id, syndrome_id):
        signals.outbreak_detection_wanted.send(None, area_id=area_id, syndrome_id=syndrome_id)


def _redis() -> redis.Redis | None:
    url = current_app.config.get("SOCKETIO_MESSAGE_QUEUE")
    if not url:
        return None
    client: redis.Redis | None = current_app.extensions.get("telehealth_surveillance_redis")
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        current_app.extensions["telehealth_surveillance_redis"] = client
    return client


def _pending_key(area_id: int, syndrome_id: int) -> str:
    return f"{key_prefix(current_app.config)}surveillance:detect:{area_id}:{syndrome_id}"


def _mark_pending(area_id: int, syndrome_id: int) -> bool:
    """Mark a run of this series queued; False when one already is."""
    client = _redis()
    if client is not None:
        try:
            return bool(client.set(_pending_key(area_id, syndrome_id), "1", nx=True,
                                   ex=DETECT_PENDING_SECONDS))
        except redis.RedisError:
            logger.warning("surveillance: Redis away; detection asked for without debounce")
            return True  # one run too many, never one too few
    if current_app.config.get("JOBS_BROKER_URL"):
        return True  # jobs run elsewhere and could not clear a mark kept here
    with _pending_lock:
        if (area_id, syndrome_id) in _pending_here:
            return False
        _pending_here.add((area_id, syndrome_id))
        return True


def detection_starting(area_id: int, syndrome_id: int) -> None:
    """The job, before it reads the counts: what commits from now on asks for its own run."""
    client = _redis()
    if client is not None:
        try:
            client.delete(_pending_key(area_id, syndrome_id))
        except redis.RedisError:
            logger.warning("surveillance: Redis away; the detection mark lapses by itself")
    with _pending_lock:
        _pending_here.discard((area_id, syndrome_id))


def syndromes_of_code(code: str) -> list[int]:
    return [s.id for s in active_syndromes() if any(code.startswith(p) for p in s.prefixes)]


def _consult_coded(consult: Consult, code: str = "", **_: Any) -> None:
    area_id = db.session.scalar(select(Clinic.area_id).where(Clinic.id == consult.clinic_id))
    detection_wanted(area_id, syndromes_of_code(code))


# --- overdue stages: on the offers' sweeper -----------------------------------------------------


def escalate_overdue(now: datetime | None = None, limit: int = 200) -> int:
    """Escalate every open alert whose stage clock (verification: 24 h) has run out: the
    area's officers and the coordinators and administrators are told, once, and it is audited.

    Run by the offer sweeper (signals.deadlines_due) in every process that sweeps: the
    conditional UPDATE lets one of them win each alert; the others change nothing.
    """
    now = now or clock.now()
    due = list(db.session.scalars(select(Alert.id).where(
        Alert.stage.in_(OPEN_STAGES), Alert.due_at < now, Alert.escalated_at.is_(None))
        .order_by(Alert.due_at).limit(limit)))
    done = 0
    for alert_id in due:
        won = db.session.execute(
            update(Alert).where(Alert.id == alert_id, Alert.escalated_at.is_(None),
                                Alert.stage.in_(OPEN_STAGES), Alert.due_at < now)
            .values(escalated_at=now).execution_options(synchronize_session=False))
        if won.rowcount != 1:  # type: ignore[attr-defined]
            continue
        alert = db.session.get(Alert, alert_id)
        assert alert is not None
        db.session.refresh(alert)
        record("alert.overdue", obj=alert, stage=str(alert.stage),
               due_at=alert.due_at.isoformat() if alert.due_at else None)
        _notify_overdue(alert)
        done += 1
    db.session.flush()
    if done:
        logger.info("surveillance: %d overdue alert(s) escalated", done)
    return done


def _escalate_overdue(_sender: Any = None, **_: Any) -> int:
    return escalate_overdue()


def _notify_overdue(alert: Alert) -> None:
    area = db.session.get(Area, alert.area_id)
    syndrome = db.session.get(Syndrome, alert.syndrome_id)
    assert area is not None and syndrome is not None
    people = {u.id: u for u in officers_for(alert.area_id)}
    for user in db.session.scalars(select(User).where(
            User.active.is_(True), User.role.in_((Role.COORDINATOR, Role.ADMIN)))):
        people.setdefault(user.id, user)
    stage = STAGE_LABELS[alert.stage]
    payload = {"alert_id": alert.id, "reference": alert.reference, "area": area.name,
               "url": alert_url(alert, external=False), "stage": str(alert.stage)}

    def subject() -> str:
        return _("Overdue: %(stage)s of alert %(ref)s (%(syndrome)s in %(area)s)",
                 stage=str(stage), ref=alert.reference, syndrome=syndrome_label(syndrome),
                 area=area.name)

    def body() -> str:
        return _("Alert %(ref)s (%(syndrome)s in %(area)s) is still at the stage "
                 "“%(stage)s” after its deadline. Look at it now: %(url)s",
                 stage=str(stage), ref=alert.reference, syndrome=syndrome_label(syndrome),
                 area=area.name, url=alert_url(alert))

    for user in people.values():
        notify(user, "alert.overdue", payload, subject=subject, body=body)


def connect_signals() -> None:
    """Detection after coding; escalation on the offers' sweeper."""
    signals.consult_coded.connect(_consult_coded)
    signals.deadlines_due.connect(_escalate_overdue)


# --- who sees what ------------------------------------------------------------------------------


def visible_area_ids(user: User, tree: AreaTree | None = None) -> set[int] | None:
    """Areas whose counts and alerts the user sees; None means every area."""
    if user.role in (Role.ADMIN, Role.COORDINATOR):
        return None
    if user.role == Role.SURVEILLANCE_OFFICER:
        roots = db.session.scalars(select(OfficerArea.area_id)
                                   .where(OfficerArea.user_id == user.id))
        return (tree or load_tree()).descendants(roots)
    return set()


def can_use_surveillance(user: User) -> bool:
    return user.role in (Role.ADMIN, Role.COORDINATOR, Role.SURVEILLANCE_OFFICER)


def check_area(user: User, area_id: int) -> Area:
    """The area if the user may see it, else NotFound (never reveal what exists)."""
    visible = visible_area_ids(user)
    area = db.session.get(Area, area_id)
    if area is None or (visible is not None and area_id not in visible):
        raise NotFound(_("No such area, or it is not one of yours."))
    return area


def get_visible_alert(user: User, alert_id: int) -> Alert:
    alert = db.session.get(Alert, alert_id)
    if alert is None or not can_use_surveillance(user):
        raise NotFound(_("No such alert, or it is not one of your areas."))
    visible = visible_area_ids(user)
    if visible is not None and alert.area_id not in visible:
        raise NotFound(_("No such alert, or it is not one of your areas."))
    return alert


def visible_alerts(user: User, open_only: bool = False) -> list[Alert]:
    query = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
    visible = visible_area_ids(user)
    if visible is not None:
        query = query.where(Alert.area_id.in_(visible))
    if open_only:
        query = query.where(Alert.stage.in_(OPEN_STAGES))
    return list(db.session.scalars(query))


# --- the EWARS workflow -------------------------------------------------------------------------


def move_alert(alert: Alert, user: User, to: AlertStage, note: str = "",
               likelihood: int | None = None, consequence: int | None = None,
               outcome: AlertOutcome | None = None) -> Alert:
    """Take an alert to its next stage: allowed moves only, one winner if two act at once."""
    get_visible_alert(user, alert.id)
    current = known(alert.stage)
    if to not in ALERT_TRANSITIONS[current]:
        raise Conflict(_("This alert cannot go from %(from)s to %(to)s.",
                         **{"from": str(STAGE_LABELS[current]), "to": str(STAGE_LABELS[to])}))
    now = clock.now()
    values: dict[str, Any] = {"stage": to, "owner_id": user.id, "updated_at": now,
                              "escalated_at": None,  # a new stage, a new clock
                              "due_at": now + timedelta(hours=STAGE_HOURS[to])
                              if to in STAGE_HOURS else None}
    if current == AlertStage.VERIFICATION:
        values["verified_at"] = now
    if to == AlertStage.CLOSED:
        if likelihood is None or consequence is None:
            likelihood, consequence = alert.likelihood, alert.consequence
        if outcome is None:
            raise InvalidInput(_("Choose the outcome."))
        values["outcome"] = outcome
    if to == AlertStage.CHARACTERISATION or likelihood is not None:
        for value in (likelihood, consequence):
            if value is None or not 1 <= value <= 5:
                raise InvalidInput(_("Likelihood and consequence are each from 1 to 5."))
        values["likelihood"], values["consequence"] = likelihood, consequence
    if len(note) > 5000:
        raise InvalidInput(_("The note is too long."))
    done = db.session.execute(update(Alert).where(Alert.id == alert.id, Alert.stage == current)
                              .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(_("Somebody else moved this alert first; look again."))
    db.session.add(AlertNote(alert_id=alert.id, author_id=user.id, stage=to, body=note.strip()))
    db.session.flush()
    db.session.refresh(alert)
    record("alert.move", obj=alert, stage=str(to), previous=str(current))
    return alert


def add_alert_note(alert: Alert, user: User, body: str) -> AlertNote:
    get_visible_alert(user, alert.id)
    body = body.strip()
    if not body or len(body) > 5000:
        raise InvalidInput(_("Write a note (at most 5,000 characters)."))
    note = AlertNote(alert_id=alert.id, author_id=user.id, stage=alert.stage, body=body)
    db.session.add(note)
    db.session.flush()
    record("alert.note", obj=alert)
    return note


# --- the line list (no patient-identifying fields) ------------------------------------------------


@dataclass(frozen=True)
class LineListRow:
    consult_id: int
    week: str
    seen_on: date
    clinic: str
    area: str
    codes: str
    age_band: str
    sex: Sex


def _age_band(years: int | None, band: str | None) -> str:
    if years is None:
        return band or ""
    for upper, label in ((1, "<1"), (5, "1-4"), (15, "5-14"), (25, "15-24"), (45, "25-44"),
                         (65, "45-64")):
        if years < upper:
            return label
    return "65+"


def line_list(alert: Alert) -> list[LineListRow]:
    """The coded consults behind an alert: its syndrome, its area (and below), its week."""
    system = week_system()
    tree = load_tree()
    areas = tree.descendants([alert.area_id])
    syndrome = db.session.get(Syndrome, alert.syndrome_id)
    assert syndrome is not None
    start = datetime.combine(alert.week_start, time(), UTC)
    prefixes = syndrome.prefixes
    if not prefixes:
        return []
    # A day either side: the week is the clinics' local one; each consult is checked below.
    query = (select(Consult, Clinic.name, Area.name, Clinic.timezone)
             .join(Clinic, Clinic.id == Consult.clinic_id).join(Area, Area.id == Clinic.area_id)
             .where(Clinic.area_id.in_(areas), Consult.created_at >= start - timedelta(days=1),
                    Consult.created_at < start + timedelta(days=8),
                    Consult.status != ConsultStatus.CANCELLED,
                    Consult.id.in_(select(ConsultDiagnosis.consult_id).where(
                        or_(*[ConsultDiagnosis.code.like(f"{p}%") for p in prefixes]))))
             .order_by(Consult.created_at))
    rows = []
    for consult, clinic_name, area_name, zone in db.session.execute(query):
        day = seen_on(consult.created_at, clinic_zone(zone))
        if week_start(day, system) != alert.week_start:
            continue
        codes = db.session.scalars(select(ConsultDiagnosis.code).where(
            ConsultDiagnosis.consult_id == consult.id).order_by(ConsultDiagnosis.code))
        rows.append(LineListRow(consult.id, week_label(alert.week_start, system),
                                day, clinic_name, area_name,
                                ", ".join(codes),
                                _age_band(consult.patient_age_years, consult.patient_age_band),
                                consult.patient_sex))
    return rows


# --- weekly reports ------------------------------------------------------------------------------


def submit_weekly_report(clinic: Clinic, user: User, week_text: str,
                         cases: dict[int, str]) -> WeeklyReport:
    """A clinic's counts for one past or current week, every active syndrome, zeros included."""
    if not (user.role == Role.CLINICIAN and user.clinic_id == clinic.id):
        raise PermissionDenied(_("Only the clinic's own clinicians send its weekly report."))
    system = week_system()
    start = parse_week(week_text, system)
    if start > week_start(seen_on(clock.now(), clinic_zone(clinic.timezone)), system):
        raise InvalidInput(_("Week %(week)s has not begun yet.", week=week_label(start, system)))
    if db.session.scalar(select(WeeklyReport.id).where(
            WeeklyReport.clinic_id == clinic.id, WeeklyReport.week_start == start)):
        raise Conflict(_("The report for week %(week)s was sent already.",
                         week=week_label(start, system)))
    numbers: dict[int, int] = {}
    for syndrome in active_syndromes():
        raw = cases.get(syndrome.id, "").strip()
        if not raw.isdigit() or int(raw) > 100_000:
            raise InvalidInput(_("%(syndrome)s: write a number of cases (0 if none).",
                                 syndrome=syndrome_label(syndrome)))
        numbers[syndrome.id] = int(raw)
    report = WeeklyReport(clinic_id=clinic.id, week_start=start, submitted_by_id=user.id,
                          counts=[WeeklyCount(syndrome_id=sid, cases=n)
                                  for sid, n in numbers.items()])
    db.session.add(report)
    db.session.flush()
    record("weekly_report.submit", obj=report, week=week_label(start, system))
    detection_wanted(clinic.area_id, [sid for sid, n in numbers.items() if n > 0])
    return report


@dataclass(frozen=True)
class Completeness:
    clinic: str
    expected: int
    received: int
    on_time: int

    @property
    def percent(self) -> int:
        return round(100 * self.received / self.expected) if self.expected else 0

    @property
    def timely_percent(self) -> int:
        return round(100 * self.on_time / self.expected) if self.expected else 0


def completeness(area_ids: Iterable[int], weeks: list[date]) -> list[Completeness]:
    """Per clinic of these areas: reports expected (one a week), received, and on time."""
    clinics = db.session.execute(select(Clinic.id, Clinic.name).where(
        Clinic.area_id.in_(list(area_ids))).order_by(Clinic.name)).all()
    result = []
    for clinic_id, name in clinics:
        reports = db.session.execute(select(WeeklyReport.week_start, WeeklyReport.submitted_at)
                                     .where(WeeklyReport.clinic_id == clinic_id,
                                            WeeklyReport.week_start.in_(weeks))).all()
        on_time = sum(1 for start, sent in reports
                      if sent.date() <= start + timedelta(days=6 + REPORT_DUE_DAYS))
        result.append(Completeness(name, len(weeks), len(reports), on_time))
    return result


# --- bulletins and share links --------------------------------------------------------------------


def suppress(value: int) -> str:
    """Shared bulletins: a count under 5 is shown as '<5', never the number."""
    return f"<{SUPPRESS_BELOW}" if 0 < value < SUPPRESS_BELOW else str(value)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_share_link(area: Area, user: User, label: str) -> tuple[ShareLink, str]:
    """A new link to the area's bulletin; the token is shown once and stored hashed."""
    check_area(user, area.id)
    token = secrets.token_urlsafe(24)
    link = ShareLink(area_id=area.id, token_hash=_token_hash(token), label=label.strip()[:160],
                     created_by_id=user.id)
    db.session.add(link)
    db.session.flush()
    record("bulletin.share", obj=link, area_id=area.id)
    return link, token


def resolve_share_link(token: str) -> ShareLink:
    link = db.session.scalar(select(ShareLink).where(ShareLink.token_hash == _token_hash(token)))
    if link is None or link.revoked_at is not None:
        raise NotFound(_("This link does not exist or was revoked."))
    return link


def revoke_share_link(user: User, link_id: int) -> ShareLink:
    link = db.session.get(ShareLink, link_id)
    if link is None:
        raise NotFound(_("No such link."))
    check_area(user, link.area_id)
    if link.revoked_at is None:
        link.revoked_at = clock.now()
        db.session.flush()
        record("bulletin.revoke", obj=link)
    return link


def share_links(user: User, area: Area) -> list[ShareLink]:
    check_area(user, area.id)
    return list(db.session.scalars(select(ShareLink).where(ShareLink.area_id == area.id)
                                   .order_by(ShareLink.id.desc())))


@dataclass
class Bulletin:
    area: Area
    week: date
    weeks: list[date]
    labels: list[str]
    syndromes: list[Syndrome]
    totals: dict[int, list[int]]  # syndrome → count per week (the area and all below)
    children: list[Area]
    child_counts: dict[tuple[int, int], int]  # (syndrome, child area) → cases this week
    alerts: list[Alert]
    completeness: list[Completeness]
    alerted_areas: set[int]

    @property
    def verified_in_time(self) -> int:
        return sum(1 for alert in self.alerts if alert.verified_at is not None
                   and alert.verified_at - alert.created_at <= timedelta(hours=24))


def build_bulletin(area: Area, week: date | None = None, span: int = 12) -> Bulletin:
    """Counts, trends, alerts and completeness of an area for the weeks up to ``week``."""
    system = week_system()
    tree = load_tree()
    last = week or week_start(clock.now().date(), system)
    weeks = weeks_between(last - timedelta(weeks=span - 1), last)
    counts = count_cases(system, since=weeks[0]).by_area(tree)
    syndromes = active_syndromes()
    totals = {s.id: series_for(counts.get((s.id, area.id), {}), weeks) for s in syndromes}
    children = list(db.session.scalars(select(Area).where(Area.parent_id == area.id)
                                       .order_by(Area.name)))
    child_counts = {(s.id, c.id): counts.get((s.id, c.id), {}).get(last, 0)
                    for s in syndromes for c in children}
    inside = tree.descendants([area.id])
    alerts = list(db.session.scalars(select(Alert).where(
        Alert.area_id.in_(inside), Alert.week_start >= weeks[0], Alert.week_start <= last)
        .order_by(Alert.week_start.desc(), Alert.id)))
    alerted = {child.id for child in children
               if any(a.area_id in tree.descendants([child.id]) and a.week_start == last
                      for a in alerts)}
    return Bulletin(area, last, weeks, [week_label(w, system) for w in weeks], syndromes, totals,
                    children, child_counts, alerts, completeness(inside, weeks), alerted)


def assign_officer(user: User, area: Area) -> OfficerArea:
    if user.role != Role.SURVEILLANCE_OFFICER:
        raise InvalidInput(_("Only surveillance officers are given areas."))
    existing = db.session.scalar(select(OfficerArea).where(OfficerArea.user_id == user.id,
                                                           OfficerArea.area_id == area.id))
    if existing is not None:
        return existing
    link = OfficerArea(user_id=user.id, area_id=area.id)
    db.session.add(link)
    db.session.flush()
    record("officer.area", obj=link, user_id=user.id, area_id=area.id)
    return link
