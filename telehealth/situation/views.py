"""The situation room: one page, each figure as CSV and the whole room as JSON, staff only."""

from __future__ import annotations

import csv
import io
from typing import Any

from babel import numbers
from flask import Blueprint, jsonify, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.wrappers import Response

from telehealth.accounts.models import Role
from telehealth.consults.models import Urgency
from telehealth.consults.services import urgency_label
from telehealth.errors import NotFound
from telehealth.situation import charts, services
from telehealth.situation.services import Filters, Room, Table
from telehealth.web import LANGUAGE_NAMES, RTL_LANGUAGES

bp = Blueprint("situation", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/situation")

STAFF = (Role.COORDINATOR, Role.ADMIN)
# The figures drawn as bars: table -> (label column, value column, second value column, scale).
BARS: dict[str, tuple[str, str, str | None, float]] = {
    "speed_week": ("week", "answered_median_h", "answered_p90_h", 1),
    "speed_urgency": ("urgency", "answered_median_h", "answered_p90_h", 1),
    "speed_specialty": ("specialty", "answered_median_h", "answered_p90_h", 1),
    "deadline": ("urgency", "share", None, 100),
    "cascade": ("urgency", "depth_median", "depth_p90", 1),
    "load": ("consults_accepted", "volunteers", None, 1),
    "availability": ("timezone", "hours_per_week", None, 1),
    "clinics": ("clinic", "consults", None, 1),
    "outcomes_specialty": ("specialty", "referral_avoided_share", None, 100),
    "outcomes_clinic": ("clinic", "referral_avoided_share", None, 100),
}
SHARE_COLUMNS = ("share", "rate", "_share")
# Rows of each table on the page (the chart beside it draws as many); the CSV has them all.
TABLE_ROWS = charts.MAX_ROWS
# Rows of each figure in the whole room's JSON; the figure's own JSON (`more`) has them all.
# Tables by clinic grow with the network (200 clinics: 600 clinic-months), the room must not.
API_ROWS = 50


def _require_staff() -> None:
    """Coordinators and administrators only; anybody else is told the room does not exist."""
    if current_user.role not in STAFF:
        raise NotFound(_("This page does not exist, or you do not have access to it."))


def _filters() -> Filters:
    _require_staff()
    return Filters.parse(request.args)


class Cells:
    """How a table's values read on the page: labels for codes, numbers in the reader's locale."""

    def __init__(self, specialties: dict[str, str]) -> None:
        self.specialties = specialties
        # A page formats about a thousand numbers: the reader's locale is looked up once, and
        # a number already written is not formatted again (most repeat: 0, 1, 100 %).
        self.locale = get_locale() or "en"
        self.written: dict[tuple[bool, Any], str] = {}

    def number(self, value: float, share: bool) -> str:
        key = (share, value)
        text = self.written.get(key)
        if text is None:
            text = self.written[key] = str(
                numbers.format_percent(value, "#,##0.#%", locale=self.locale) if share
                else numbers.format_decimal(value, "#,##0.##", locale=self.locale))
        return text

    def __call__(self, column: str, value: Any) -> str:
        if value is None:
            return "–"
        if column == "urgency":
            return urgency_label(Urgency(value))
        if column == "specialty":
            return self.specialties.get(value, value)
        if column == "language":
            return LANGUAGE_NAMES.get(value, value)
        if column == "fix":
            return _("Unblock them") if value == "unblock" else _("Recruit")
        if isinstance(value, float) and column.endswith(SHARE_COLUMNS):
            return self.number(value, share=True)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.number(value, share=False)
        return str(value)


def _bar_charts(room: Room, cells: Cells, rtl: bool) -> dict[str, Any]:
    drawn = {}
    for key, (label, value, second, scale) in BARS.items():
        table = room.tables[key]
        rows = table.records()

        def scaled(row: dict[str, Any], column: str | None, scale: float = scale) -> Any:
            number = row.get(column) if column else None
            return None if number is None else float(number) * scale

        if key == "clinics":  # one bar per clinic: its consults over the whole period
            totals: dict[str, float] = {}
            for row in rows:
                totals[row["clinic"]] = totals.get(row["clinic"], 0) + row["consults"]
            bars = [charts.Bar(name, total) for name, total in totals.items()]
        else:
            bars = [charts.Bar(cells(label, row[label]), scaled(row, value),
                               scaled(row, second)) for row in rows]
        drawn[key] = charts.bar_chart(bars, rtl)
    return drawn


def _heat_map(room: Room, names: dict[int, tuple[str, str]], rtl: bool) -> Any:
    heat = room.heat
    cells = {(i, j): heat.cells[(s, lang)]
             for i, (s, _name) in enumerate(heat.specialties)
             for j, lang in enumerate(heat.languages) if (s, lang) in heat.cells}
    # The room is cached for every reader (and recomputed by a thread in the default
    # language): each specialty is named again in this reader's language.
    return charts.heat_map([names.get(s, ("", name))[1] for s, name in heat.specialties],
                           [LANGUAGE_NAMES.get(lang, lang) for lang in heat.languages], cells, rtl)


def _figures_html(room: Room, names: dict[int, tuple[str, str]]) -> Markup:
    """The room's figures (heat map, charts, tables) as HTML in the reader's language.

    They are the same for every reader of the same language until the figures change, and a
    page formats about a thousand numbers: they are rendered once per computed room and
    language (the room is cached, see services.room) and kept on it."""
    locale = str(get_locale() or "en")
    html = room.rendered.get(locale)
    if html is None:
        rtl = locale in RTL_LANGUAGES
        cells = Cells(dict(names.values()))
        html = room.rendered[locale] = Markup(render_template(
            "situation/_figures.html", room=room, filters=room.filters, cell=cells,
            bars=_bar_charts(room, cells, rtl), heat_map=_heat_map(room, names, rtl),
            block_reasons=services.BLOCK_REASONS, table_rows=TABLE_ROWS))
    return html


@bp.route("/situation")
@login_required
def index() -> str:
    filters = _filters()
    room = services.room(filters)
    names = services.specialty_names()  # in the reader's language
    specialties = dict(names.values())
    return render_template(
        "situation/index.html", room=room, filters=filters, cell=Cells(specialties),
        figures=_figures_html(room, names),
        clinics=services.clinic_choices(), specialties=sorted(specialties.items(),
                                                              key=lambda s: s[1]),
        periods=services.PERIOD_DAYS)


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if value is None else value for value in row])
    return out.getvalue()


@bp.route("/situation/<key>.csv")
@login_required
def download(key: str) -> Response:
    filters = _filters()
    table = services.one_table(key, filters)
    return Response(table_csv(table), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="situation-{table.key}.csv"'})


def table_json(table: Table, limit: int | None = None, filters: Filters | None = None
               ) -> dict[str, Any]:
    """A figure as JSON; with `limit`, its first rows and where to find every row (`more`)."""
    rows = table.records()
    answer: dict[str, Any] = {"title": str(table.title), "columns": table.columns,
                              "rows": rows[:limit], "rows_total": len(rows)}
    if limit is not None and len(rows) > limit:
        query: dict[str, Any] = filters.query_args() if filters else {}
        answer["more"] = url_for("situation.api_table", key=table.key, **query)
    return answer


@bp.route("/situation/api")
@login_required
def api_room() -> Response:
    filters = _filters()
    room = services.room(filters)
    return jsonify({"filters": filters.query_args(),
                    "figures": {key: table_json(t, API_ROWS, filters)
                                for key, t in room.tables.items()}})


@bp.route("/situation/api/<key>")
@login_required
def api_table(key: str) -> Response:
    filters = _filters()
    return jsonify({"filters": filters.query_args(),
                    key: table_json(services.one_table(key, filters))})
