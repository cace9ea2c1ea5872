"""Benchmark: outbreak detectors on simulated series, and recomputing every series in the app.

    .venv/bin/python bench/surveillance.py                 # detectors + 100,000 consults, SQLite
    .venv/bin/python bench/surveillance.py --skip-app      # detectors only
    .venv/bin/python bench/surveillance.py --skip-detectors --postgres URL   # the app part there
    .venv/bin/python bench/surveillance.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test_surv

Part 1 simulates, with a fixed seed, weekly counts for 50 areas × 8 syndromes × 3 years
(negative binomial around a seasonal mean, variance 1.5–3 × the mean; each syndrome its own
baseline) and injects into
every series one outbreak in the third year: 3 weeks during which the expected count doubles
(extra cases ~ Poisson of the baseline mean), starting on a known week. Each detector judges
the third year's weeks (those Farrington can judge with 2 years of history); per detector it
prints the false alarm rate per series-week (alarms outside outbreaks and the 4 weeks after
them), the probability of detection within one week of the start (an alarm in the start week
or the next), the median delay from start to first alarm, and the same for "double the mean
of the previous 3 weeks". The syndromes whose rule is a fixed count (AFP, VHF, measles) alert
on every case by design; they are left out of the false-alarm target and shown apart.

Part 2 fills a database with 100,000 coded consults over 3 years in 50 districts' clinics and
times `find_signals()` (every series from SQL to verdict, what the detection job does after new
data), against the time of the SQL count alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TELEHEALTH_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench-surv-"))
os.environ.setdefault("TELEHEALTH_SECRET_KEY", "bench")

from telehealth.surveillance import detectors  # noqa: E402

AREAS, YEARS, WEEKS_PER_YEAR = 50, 3, 52
WEEKS = YEARS * WEEKS_PER_YEAR
# Baseline weekly cases per area (low, high) for the 8 built-in syndromes.
BASELINES = {"awd": (8, 30), "bloody_diarrhoea": (2, 8), "ili_sari": (15, 60),
             "afp": (0.02, 0.1), "measles_rash": (0.1, 0.6), "acute_jaundice": (1, 5),
             "meningitis": (0.5, 3), "vhf": (0.01, 0.05)}
OUTBREAK_WEEKS = 3
AFTER_WEEKS = 4  # alarms just after an outbreak are neither false nor detections
FIRST_JUDGED = detectors.FarringtonControl(b=2).first_week()
COMPARED = ["farrington", "ears_c1", "ears_c2", "ears_c3", "nb_cusum", "double_mean"]


@dataclass
class Series:
    syndrome: str
    counts: np.ndarray
    start: int  # the outbreak's first week


def simulate(seed: int = 20261129) -> list[Series]:
    rng = np.random.default_rng(seed)
    out = []
    t = np.arange(WEEKS)
    for syndrome, (low, high) in BASELINES.items():
        for _area in range(AREAS):
            base = rng.uniform(low, high)
            mean = base * np.exp(0.3 * np.cos(2 * np.pi * (t - rng.integers(52)) / 52))
            # Variance = phi × mean with phi in 1.5..3, as in Noufaily et al. (2013)'s scenarios.
            phi = rng.uniform(1.5, 3.0)
            size = mean / (phi - 1.0)
            counts = rng.negative_binomial(size, size / (size + mean)).astype(float)
            start = int(rng.integers(FIRST_JUDGED + 4, WEEKS - OUTBREAK_WEEKS - AFTER_WEEKS))
            counts[start:start + OUTBREAK_WEEKS] += rng.poisson(mean[start:start + OUTBREAK_WEEKS])
            out.append(Series(syndrome, counts, start))
    return out


@dataclass
class Figures:
    false_alarms: int = 0
    quiet_weeks: int = 0
    detected_in_a_week: int = 0
    outbreaks: int = 0
    delays: list[int] | None = None

    def add(self, alarm: np.ndarray, start: int) -> None:
        self.delays = self.delays or []
        for week in range(FIRST_JUDGED, WEEKS):
            if not start <= week < start + OUTBREAK_WEEKS + AFTER_WEEKS:
                self.quiet_weeks += 1
                self.false_alarms += int(alarm[week])
        self.outbreaks += 1
        hits = [w - start for w in range(start, start + OUTBREAK_WEEKS) if alarm[w]]
        if hits:
            self.delays.append(hits[0])
            self.detected_in_a_week += int(hits[0] <= 1)

    def row(self, name: str) -> str:
        far = self.false_alarms / max(1, self.quiet_weeks)
        pod = self.detected_in_a_week / max(1, self.outbreaks)
        delay = statistics.median(self.delays) if self.delays else float("nan")
        return f"| {name} | {far:.2%} | {pod:.0%} | {delay:g} | {len(self.delays or [])} |"


def run_detector(name: str, counts: np.ndarray, threshold: int) -> np.ndarray:
    used, result = detectors.detect(name, counts, threshold, start=FIRST_JUDGED)
    assert used == name or name == "fixed", f"{name} fell back to {used}"
    return result.alarm


def part_detectors() -> None:
    from telehealth.surveillance.services import DEFAULT_SYNDROMES

    defaults = {code: (detector, threshold) for code, _l, _p, detector, threshold
                in DEFAULT_SYNDROMES}
    series = simulate()
    fixed_rule = {code for code, (detector, _t) in defaults.items() if detector == "fixed"}
    started = time.perf_counter()
    by_detector = {name: Figures() for name in COMPARED}
    default_all, default_per = Figures(), {code: Figures() for code in BASELINES}
    timing = {name: 0.0 for name in COMPARED}
    for s in series:
        for name in COMPARED:
            t0 = time.perf_counter()
            alarm = run_detector(name, s.counts, 1)
            timing[name] += time.perf_counter() - t0
            if s.syndrome not in fixed_rule:
                by_detector[name].add(alarm, s.start)
            if name == defaults[s.syndrome][0]:
                default_per[s.syndrome].add(alarm, s.start)
                default_all.add(alarm, s.start)
        if s.syndrome in fixed_rule:
            alarm = run_detector("fixed", s.counts, defaults[s.syndrome][1])
            default_per[s.syndrome].add(alarm, s.start)
    print(f"{len(series)} series × {WEEKS - FIRST_JUDGED} judged weeks "
          f"({time.perf_counter() - started:.1f} s)\n")
    header = ("| detector | false alarms per series-week | detected within 1 week | "
              "median delay (weeks) | detected at all |\n|---|---|---|---|---|")
    print("All syndromes with a statistical rule (5 × 50 series):\n" + header)
    for name in COMPARED:
        print(by_detector[name].row(f"{name} ({timing[name]:.1f} s)"))
    print("\nThe default rule of each syndrome (50 series each):\n" + header)
    for code, figures in default_per.items():
        detector, threshold = defaults[code]
        label = f"{code}: {detector}" + (f" ≥ {threshold}" if detector == "fixed" else "")
        print(figures.row(label))


def part_app(database_url: str | None) -> None:
    from datetime import timedelta

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, insert, select, text

    from telehealth import clock, create_app
    from telehealth.accounts.models import Role, Specialty, User
    from telehealth.clinics.models import Clinic
    from telehealth.consults.models import Consult, ConsultMode, ConsultStatus, Sex, Urgency
    from telehealth.diagnoses.models import ConsultDiagnosis
    from telehealth.extensions import db
    from telehealth.places.models import Area
    from telehealth.surveillance import services

    if database_url:
        engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    url = database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-surv-db-')}/b.sqlite"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    rng = np.random.default_rng(7)
    with app.app_context():
        upgrade()
        syndromes = services.ensure_default_syndromes()
        country = Area(code="XX", name="Country", level="country")
        db.session.add(country)
        db.session.flush()
        districts = [Area(code=f"XX-{i:02d}", name=f"District {i}", parent_id=country.id)
                     for i in range(AREAS)]
        db.session.add_all(districts)
        db.session.flush()
        clinics = [Clinic(name=f"Clinic {i}", country="XX", area_id=districts[i % AREAS].id)
                   for i in range(2 * AREAS)]
        db.session.add_all(clinics)
        specialty = Specialty(code="infectious", name="Infectious diseases")
        db.session.add(specialty)
        db.session.flush()
        user = User(email="bench@example.org", name="Bench", password_hash="x",
                    role=Role.CLINICIAN, clinic_id=clinics[0].id)
        db.session.add(user)
        db.session.commit()
        codes = [s.prefixes[0] + "9" if len(s.prefixes[0]) == 3 else s.prefixes[0]
                 for s in syndromes] + ["I10", "E119"]
        now = clock.now()
        total = 100_000
        t0 = time.perf_counter()
        for batch in range(0, total, 10_000):
            consult_rows = []
            for i in range(batch, batch + 10_000):
                seen = now - timedelta(days=int(rng.integers(0, YEARS * 364)),
                                       minutes=int(rng.integers(0, 1440)))
                consult_rows.append({
                    "id": i + 1, "clinic_id": clinics[int(rng.integers(len(clinics)))].id,
                    "created_by_id": user.id, "status": ConsultStatus.CLOSED,
                    "patient_ref": f"P{i}", "patient_sex": Sex.UNKNOWN,
                    "presenting_problem": "-", "question": "-", "specialty_id": specialty.id,
                    "urgency": Urgency.ROUTINE, "mode": ConsultMode.WRITTEN, "languages": "en",
                    "history": "", "outcome_note": "", "created_at": seen, "updated_at": seen})
            db.session.execute(insert(Consult), consult_rows)
            db.session.execute(insert(ConsultDiagnosis), [
                {"consult_id": row["id"], "code": codes[int(rng.integers(len(codes)))],
                 "added_by_id": user.id, "added_at": row["created_at"]}
                for row in consult_rows])
            db.session.commit()
        print(f"\n{total:,} coded consults in {len(clinics)} clinics of {AREAS} districts "
              f"({db.engine.dialect.name}; filled in {time.perf_counter() - t0:.0f} s)")
        assert db.session.scalar(select(db.func.count(Consult.id))) == total
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            services.count_cases(services.week_system())
            t_sql = time.perf_counter() - t0
            t0 = time.perf_counter()
            signals, stats = services.find_signals()
            timings.append((t_sql, time.perf_counter() - t0))
            db.session.rollback()
        t_sql, t_all = min(timings)
        print(f"count in SQL: {t_sql * 1000:.0f} ms; every series recomputed "
              f"({stats['series']} series, SQL + detectors): {t_all:.2f} s, "
              f"{len(signals)} signal(s) in the last {services.LOOKBACK_WEEKS} weeks; "
              f"ratio {t_all / t_sql:.1f}× the count alone")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-app", action="store_true")
    parser.add_argument("--skip-detectors", action="store_true")
    parser.add_argument("--postgres")
    args = parser.parse_args()
    if not args.skip_detectors:
        part_detectors()
    if not args.skip_app:
        part_app(args.postgres)


if __name__ == "__main__":
    main()
