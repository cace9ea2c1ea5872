"""The situation room's figures on a seeded world with known answers (tests/situation/conftest.py).

Run on SQLite by default and on PostgreSQL with TELEHEALTH_TEST_DATABASE_URL: the same
expectations hold on both (percentile_cont there, window functions here).
"""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import Float, literal, select, union_all

from telehealth.extensions import db
from telehealth.situation import services
from telehealth.situation.services import Filters


def rows(key: str, filters: Filters | None = None) -> list[tuple]:
    return services.one_table(key, filters or Filters()).rows


def test_heat_map_cells(seeded):
    assert rows("demand") == [
        ("cardiology", "en", 1, 0, 1),
        ("cardiology", "fr", 1, 1, 2),
        ("cardiology", "pt", 1, 0, 0),
        ("dermatology", "pt", 1, 0, 0),
        ("dermatology", "ar", 1, 0, 0),
        ("paediatrics", "sw", 1, 0, 0),
    ]


def test_heat_map_filters(seeded):
    assert rows("demand", Filters(specialty="cardiology", language="fr")) == [
        ("cardiology", "fr", 1, 1, 2)]
    # Maputo's open consults only; supply is not a clinic's.
    assert rows("demand", Filters(clinic_id=seeded["maputo"].id)) == [
        ("cardiology", "en", 0, 0, 1), ("cardiology", "fr", 0, 1, 2),
        ("cardiology", "pt", 1, 0, 0), ("dermatology", "pt", 1, 0, 0),
    ]


def test_gap_list(seeded):
    heat = services.demand_supply(Filters())
    gaps, table = services.gap_list(heat)
    assert [(g.specialty, g.language, g.open_consults, g.blocked) for g in gaps] == [
        ("cardiology", "pt", 1, [("Chloé", "on_leave")]),
        ("dermatology", "ar", 1, []),
        ("dermatology", "pt", 1, [("Dan", "unverified")]),
        ("paediatrics", "sw", 1, [("Eve", "unavailable")]),
    ]
    assert [row[-1] for row in table.rows] == ["unblock", "recruit", "unblock", "unblock"]


def test_speed_by_urgency(seeded):
    table = services.speed(Filters(), "urgency")
    by = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert by["urgent"] == {
        "urgency": "urgent", "consults": 6,
        "first_offer_median_h": 0.5, "first_offer_p90_h": 1.3,
        "accepted_median_h": 2.5, "accepted_p90_h": 4.4,
        "answered_median_h": 8.0, "answered_p90_h": 17.0,
        "closed_median_h": 30.0, "closed_p90_h": 44.4,
    }
    assert by["routine"] == {
        "urgency": "routine", "consults": 4,
        "first_offer_median_h": 1.1, "first_offer_p90_h": 1.82,
        "accepted_median_h": 30.0, "accepted_p90_h": 30.0,
        "answered_median_h": 50.0, "answered_p90_h": 50.0,
        "closed_median_h": 100.0, "closed_p90_h": 100.0,
    }
    assert by["emergency"] == {
        "urgency": "emergency", "consults": 1,
        "first_offer_median_h": 0.1, "first_offer_p90_h": 0.1,
        "accepted_median_h": 0.5, "accepted_p90_h": 0.5,
        "answered_median_h": 2.0, "answered_p90_h": 2.0,
        "closed_median_h": None, "closed_p90_h": None,
    }


def test_speed_by_week_and_specialty(seeded):
    weeks = {row[0]: row[1] for row in rows("speed_week")}
    # Weeks start on Monday: 5 Nov -> 2 Nov; 15 Nov (Sun) -> 9 Nov; 16, 17, 22 (Sun) Nov ->
    # 16 Nov; 23 and 25 Nov -> 23 Nov.
    assert weeks == {"2026-11-02": 1, "2026-11-09": 1, "2026-11-16": 3, "2026-11-23": 6}
    specialties = {row[0]: row[1:4] for row in rows("speed_specialty")}
    assert specialties["cardiology"] == (6, 0.5, 1.3)
    # A shorter period leaves the older consults out.
    assert sum(row[1] for row in rows("speed_week", Filters(days=7))) == 7


def test_answered_within_deadline(seeded):
    assert rows("deadline") == [
        ("emergency", 1.0, 1, 0, 0.0),
        ("urgent", 12.0, 4, 3, 0.75),
        ("routine", 72.0, 1, 1, 1.0),
    ]


def test_cascade_depth_declines_and_expiries(seeded):
    assert rows("cascade") == [
        ("emergency", 1, 3, 3.0, 3.0, 3, 0, 0, 0.0, 0.0),
        ("urgent", 5, 8, 1.0, 2.6, 3, 2, 2, 0.25, 0.25),
        ("routine", 2, 2, 1.0, 1.0, 1, 0, 0, 0.0, 0.0),
    ]


def test_volunteers(seeded):
    # Ana carries 4 of the 6 accepted consults; Ben and Chloé took none in 90 days; Eve's
    # licence runs out in 10 days.
    assert rows("volunteers") == [(5, 6, 1, 0.6667, 2, 1)]
    assert rows("load") == [("0", 2), ("1", 2), ("2", 0), ("3–5", 1), ("6–10", 0), ("11+", 0)]
    assert rows("expiring") == [("Eve", "2026-12-05")]
    assert rows("availability") == [("UTC", 4, 506.0), ("Europe/Paris", 1, 1.0)]
    assert rows("volunteers", Filters(specialty="cardiology")) == [(3, 4, 1, 1.0, 2, 0)]


def test_clinics(seeded):
    assert rows("clinics") == [("Goma", "2026-11", 8), ("Maputo", "2026-11", 3)]
    assert rows("silent") == [("Bukavu", None), ("Kindu", "2026-05-09T12:00:00+00:00")]


def test_outcomes(seeded):
    assert rows("outcomes_specialty") == [
        ("cardiology", 3, 3, 2, 1, 0.5, 1, 1, 1.0, 4.0),
        ("dermatology", 1, 1, 1, 1, 1.0, 1, 0, 0.0, 4.0),
    ]
    assert rows("outcomes_clinic") == [
        ("Goma", 3, 3, 2, 1, 0.5, 1, 1, 1.0, 4.0),
        ("Maputo", 1, 1, 1, 1, 1.0, 1, 0, 0.0, 4.0),
    ]


def _values(groups: dict[str, list[float]]):
    parts = [select(literal(g).label("grp"), literal("m").label("metric"),
                    literal(v, Float).label("value"))
             for g, values in groups.items() for v in values]
    return union_all(*parts).subquery()


def _reference(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@pytest.mark.parametrize("portable", [False, True])
def test_percentiles_match_linear_interpolation(app, portable):
    """percentile_cont (PostgreSQL) and the window-function fallback give the same figures:
    on PostgreSQL both are run (the fallback forced), on SQLite the fallback."""
    rng = random.Random(13)
    groups = {f"g{n}": [float(rng.randint(0, 5000)) / 4 for _ in range(n)]
              for n in (1, 2, 3, 7, 10, 11, 40)}
    query = services.percentile_rows(_values(groups), portable=portable or None)
    result = {row.grp: (row.n, row.q0, row.q1) for row in db.session.execute(query)}
    for grp, values in groups.items():
        assert result[grp][0] == len(values)
        assert round(result[grp][1], 6) == round(_reference(values, 0.5), 6)
        assert round(result[grp][2], 6) == round(_reference(values, 0.9), 6)


def test_figures_are_reused_until_a_consult_changes(app, seeded, monkeypatch, make_user):
    from telehealth.accounts.models import Role
    from telehealth.consults.models import Consult, ConsultStatus
    from telehealth.consults.services import cancel_consult

    monkeypatch.setitem(app.config, "SITUATION_CACHE_SECONDS", 60)
    first = services.room(Filters())
    assert services.room(Filters()) is first
    assert services.room(Filters(days=30)) is not first
    waiting = db.session.scalars(select(Consult).where(
        Consult.status == ConsultStatus.SUBMITTED, Consult.languages == "ar")).one()
    cancel_consult(waiting, make_user(Role.COORDINATOR))
    db.session.commit()
    # The last figures at once, marked as being updated; the new ones a moment later.
    stale = services.room(Filters())
    assert stale.updating and stale.tables is first.tables
    deadline = time.monotonic() + 10
    while services._COMPUTING and time.monotonic() < deadline:
        time.sleep(0.02)
    fresh = services.room(Filters())
    assert fresh is not first and not fresh.updating
    assert ("dermatology", "ar", 1, 0, 0) not in fresh.tables["demand"].rows
