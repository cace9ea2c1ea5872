"""Surveillance pages: counts, alerts and their workflow, weekly reports, bulletins, exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.boundary import on_refusal
from telehealth.clinics.models import Clinic
from telehealth.consults.models import Consult
from telehealth.consults.services import visible_consults_clause
from telehealth.errors import InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.places.models import Area
from telehealth.places.services import load_tree
from telehealth.security.roles import admin_required
from telehealth.surveillance import services, svg
from telehealth.surveillance.models import (
    ALERT_TRANSITIONS,
    OPEN_STAGES,
    AlertOutcome,
    AlertStage,
    Syndrome,
)

bp = Blueprint("surveillance", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/surveillance")


def officer_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Surveillance officers, coordinators and admins; everybody else is refused."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not services.can_use_surveillance(current_user):
            raise PermissionDenied(_("This page is for surveillance officers."))
        return view(*args, **kwargs)

    return wrapped


def _int(name: str, low: int = 1, high: int = 2**31 - 1) -> int | None:
    raw = request.values.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(_("%(field)s must be a whole number.", field=name))
    return int(raw)


def _week_arg() -> date | None:
    text = request.args.get("week", "").strip()
    return services.parse_week(text, services.week_system()) if text else None


def _count_table(clinic_id: int | None, area_ids: set[int] | None) -> dict[str, Any]:
    """Cases per syndrome × area for the last 4 weeks (clinicians: their clinic's only)."""
    system = services.week_system()
    this_week = services.week_start(clock.now().date(), system)
    weeks = services.weeks_between(this_week - timedelta(weeks=3), this_week)
    counts = services.count_cases(system, since=weeks[0], clinic_id=clinic_id)
    tree = load_tree()
    by_area = counts.by_area(tree)
    areas = {a.id: a for a in db.session.scalars(select(Area))}
    rows = []
    for (syndrome_id, area_id), by_week in sorted(by_area.items()):
        if area_ids is not None and area_id not in area_ids:
            continue
        if clinic_id is not None and area_id != counts.clinic_area.get(clinic_id):
            continue  # a clinician sees their clinic's own row, not the district's total
        rows.append((syndrome_id, areas[area_id], services.series_for(by_week, weeks)))
    return {"weeks": [services.week_label(w, system) for w in weeks], "rows": rows,
            "syndromes": {s.id: s for s in db.session.scalars(select(Syndrome))}}


@bp.route("/surveillance")
@login_required
def index() -> str:
    if current_user.role == Role.CLINICIAN and current_user.clinic_id is not None:
        return render_template("surveillance/index.html", table=_count_table(
            current_user.clinic_id, None), alerts=[], clinic_view=True)
    if not services.can_use_surveillance(current_user):
        raise PermissionDenied(_("This page is for surveillance officers."))
    visible = services.visible_area_ids(current_user)
    areas = list(db.session.scalars(select(Area).order_by(Area.name)))
    return render_template("surveillance/index.html", table=_count_table(None, visible),
                           alerts=services.visible_alerts(current_user), clinic_view=False,
                           now=clock.now(), open_stages={s.value for s in OPEN_STAGES},
                           areas=[a for a in areas if visible is None or a.id in visible])


@bp.route("/surveillance/alerts/<int:alert_id>")
@officer_required
def alert_detail(alert_id: int) -> str:
    alert = services.get_visible_alert(current_user, alert_id)
    evidence = json.loads(alert.evidence or "{}")
    rows = services.line_list(alert)
    # Only those who may open a consult get a link to it; the line list itself is de-identified.
    readable = set(db.session.scalars(select(Consult.id).where(
        visible_consults_clause(current_user), Consult.id.in_([r.consult_id for r in rows]))))
    chart = svg.trend_chart(evidence.get("weeks", []), evidence.get("observed", []),
                            evidence.get("upper"), services.syndrome_label(alert.syndrome),
                            expected=evidence.get("expected"))
    return render_template("surveillance/alert.html", alert=alert, evidence=evidence,
                           chart=chart, rows=rows, readable=readable,
                           moves=sorted(ALERT_TRANSITIONS.get(alert.stage, ())),
                           outcomes=list(AlertOutcome))


@bp.route("/surveillance/alerts/<int:alert_id>/move", methods=["POST"])
@officer_required
def move(alert_id: int) -> Response:
    alert = services.get_visible_alert(current_user, alert_id)
    try:
        to = AlertStage(request.form.get("stage", ""))
        outcome = AlertOutcome(request.form["outcome"]) if request.form.get("outcome") else None
    except ValueError as exc:
        raise InvalidInput(_("Choose a step from the list.")) from exc
    services.move_alert(alert, current_user, to, request.form.get("note", ""),
                        _int("likelihood", 1, 5), _int("consequence", 1, 5), outcome)
    flash(_("Alert %(ref)s: %(stage)s.", ref=alert.reference,
            stage=services.STAGE_LABELS[to]), "success")
    return redirect(url_for("surveillance.alert_detail", alert_id=alert.id))


@bp.route("/surveillance/alerts/<int:alert_id>/notes", methods=["POST"])
@officer_required
def note(alert_id: int) -> Response:
    alert = services.get_visible_alert(current_user, alert_id)
    services.add_alert_note(alert, current_user, request.form.get("body", ""))
    flash(_("Note added."), "success")
    return redirect(url_for("surveillance.alert_detail", alert_id=alert.id))


@bp.route("/surveillance/weekly-report", methods=["GET", "POST"])
@login_required
def weekly_report() -> Any:
    if current_user.role != Role.CLINICIAN or current_user.clinic_id is None:
        raise PermissionDenied(_("Only a clinic's clinicians send its weekly report."))
    clinic = db.session.get(Clinic, current_user.clinic_id)
    assert clinic is not None
    syndromes = services.active_syndromes()
    system = services.week_system()
    if request.method == "POST":
        week = request.form.get("week", "")
        cases = {s.id: request.form.get(f"cases-{s.id}", "") for s in syndromes}
        # A refused report comes back as typed, with the reason, not on an error page.
        on_refusal(lambda: render_template("surveillance/weekly_report.html",
                                           syndromes=syndromes, week=week, cases=cases,
                                           clinic=clinic))
        services.submit_weekly_report(clinic, current_user, week, cases)
        flash(_("Weekly report sent."), "success")
        return redirect(url_for("surveillance.weekly_report"))
    last_week = services.week_start(clock.now().date(), system) - timedelta(weeks=1)
    return render_template("surveillance/weekly_report.html", syndromes=syndromes,
                           week=services.week_label(last_week, system), cases={},
                           clinic=clinic)


def _bulletin_context(area: Area, shared: bool) -> dict[str, Any]:
    bulletin = services.build_bulletin(area, _week_arg())
    charts = {s.id: svg.trend_chart(bulletin.labels, bulletin.totals[s.id],
                                    title=services.syndrome_label(s))
              for s in bulletin.syndromes}
    the_map = svg.area_map(bulletin.children or [area], bulletin.alerted_areas
                           if bulletin.children else ({area.id} if any(
                               a.week_start == bulletin.week for a in bulletin.alerts) else set()),
                           area.name)
    cell = services.suppress if shared else str
    return {"b": bulletin, "charts": charts, "map": the_map, "cell": cell, "shared": shared,
            "week_label": bulletin.labels[-1]}


@bp.route("/surveillance/bulletin/<int:area_id>")
@officer_required
def bulletin(area_id: int) -> str:
    area = services.check_area(current_user, area_id)
    return render_template("surveillance/bulletin.html", **_bulletin_context(area, False),
                           links=services.share_links(current_user, area))


@bp.route("/surveillance/bulletin/<int:area_id>/share", methods=["POST"])
@officer_required
def share(area_id: int) -> str:
    area = services.check_area(current_user, area_id)
    _link, token = services.create_share_link(area, current_user, request.form.get("label", ""))
    url = url_for("surveillance.shared_bulletin", share_token=token, _external=True)
    return render_template("surveillance/shared_link.html", area=area, url=url)


@bp.route("/surveillance/share/<int:link_id>/revoke", methods=["POST"])
@officer_required
def revoke(link_id: int) -> Response:
    link = services.revoke_share_link(current_user, link_id)
    flash(_("The link no longer works."), "success")
    return redirect(url_for("surveillance.bulletin", area_id=link.area_id))


@bp.route("/bulletins/<share_token>")
def shared_bulletin(share_token: str) -> str:
    """Public by design: the unguessable token is the access check; aggregates only."""
    if len(share_token) > 100:
        raise NotFound(_("This link does not exist or was revoked."))
    link = services.resolve_share_link(share_token)
    return render_template("surveillance/bulletin.html", **_bulletin_context(link.area, True),
                           links=[])


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.route("/surveillance/export/counts.csv")
@officer_required
def export_counts() -> Response:
    table = _count_table(None, services.visible_area_ids(current_user))
    rows = [[table["syndromes"][sid].code, area.code, area.name, week, n]
            for sid, area, series in table["rows"]
            for week, n in zip(table["weeks"], series, strict=True)]
    return _csv("counts.csv", ["syndrome", "area_code", "area", "week", "cases"], rows)


@bp.route("/surveillance/export/alerts.csv")
@officer_required
def export_alerts() -> Response:
    system = services.week_system()
    rows = [[a.reference, a.syndrome.code, a.area.code,
             services.week_label(a.week_start, system), a.detector, a.observed, a.expected,
             a.upper_bound, a.stage.value, a.outcome.value if a.outcome else "",
             a.created_at.isoformat(), a.verified_at.isoformat() if a.verified_at else "",
             *_two_week_cells(a.evidence)]
            for a in services.visible_alerts(current_user)]
    return _csv("alerts.csv", ["alert", "syndrome", "area_code", "week", "detector", "observed",
                               "expected", "upper_bound", "stage", "outcome", "opened_at",
                               "verified_at", "two_weeks_observed", "two_weeks_expected",
                               "two_weeks_upper_bound", "two_weeks_alarmed"], rows)


def _two_week_cells(evidence: str | None) -> list[Any]:
    """The two-week sum a detector that tests it saw (empty for the others): without it an
    alarm of the sum reads as a count under its bound."""
    pair = json.loads(evidence or "{}").get("two_weeks")
    if pair is None:
        return ["", "", "", ""]
    return [pair["observed"], pair["expected"], pair["upper"], "yes" if pair["alarmed"] else "no"]


@bp.route("/surveillance/syndromes", methods=["GET", "POST"])
@login_required
def syndromes() -> Any:
    if current_user.role != Role.ADMIN:
        abort(403)
    if request.method == "POST":
        syndrome_id = _int("syndrome_id")
        syndrome = db.session.get(Syndrome, syndrome_id) if syndrome_id else None
        if syndrome_id and syndrome is None:
            raise NotFound(_("No such syndrome."))
        services.save_syndrome(syndrome, request.form.get("code", ""),
                               request.form.get("name", ""), request.form.get("codes", ""),
                               request.form.get("detector", ""),
                               _int("threshold", 1, 10_000) or 0,
                               request.form.get("active") == "1")
        flash(_("Syndrome saved."), "success")
        return redirect(url_for("surveillance.syndromes"))
    return render_template("surveillance/syndromes.html",
                           syndromes=list(db.session.scalars(select(Syndrome)
                                                             .order_by(Syndrome.id))),
                           detectors=services.DETECTOR_LABELS)


@bp.app_context_processor
def labels() -> dict[str, Any]:
    """The surveillance labels, in the reader's language, for every template."""
    return {"syndrome_label": services.syndrome_label,
            "stage_label": lambda stage: str(services.STAGE_LABELS[stage]),
            "detector_label": lambda name: str(services.DETECTOR_LABELS.get(name, name)),
            "alert_outcome_label": lambda outcome: str(services.OUTCOME_LABELS[outcome]),
            "risk_level": lambda lik, con: str(services.risk_level(lik, con))}


@bp.route("/admin/areas/officer", methods=["POST"])
@admin_required
def officer_area() -> Response:
    """An administrator gives a surveillance officer an area (shown on the areas page)."""
    user = db.session.get(User, _int("user_id") or 0)
    area = db.session.get(Area, _int("area_id") or 0)
    if user is None or area is None:
        raise NotFound(_("Choose from the list."))
    services.assign_officer(user, area)
    flash(_("Area given to the officer."), "success")
    return redirect(url_for("places.areas"))
