"""Benchmark: the situation room's figures at 1,000 and 100,000 consults.

    .venv/bin/python bench/situation.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test_room

Builds a roster of 2,000 volunteers (bench/matching.py's), then `size` consults spread over
two years (a third of them in the default 90-day period, 5 % still waiting), with one to
three offers each and close-out answers; times the whole room (`services.room`, every
figure, computed afresh) and the page as a coordinator gets it (the first view computes, the
next reuse the figures until the data changes), and prints p50s, their growth against the
smallest size and the page's bytes. The PostgreSQL database given is emptied first.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from bench.matching import NOW, SPECIALTIES, build, reset_postgres  # noqa: E402
from telehealth import clock, create_app  # noqa: E402
from telehealth.accounts.models import Role, User  # noqa: E402
from telehealth.consults.models import (  # noqa: E402
    Consult,
    ConsultMode,
    ConsultStatus,
    Outcome,
    Sex,
    Urgency,
)
from telehealth.extensions import db  # noqa: E402
from telehealth.matching.models import Offer, OfferStatus  # noqa: E402
from telehealth.situation import services  # noqa: E402
from telehealth.situation.services import Filters  # noqa: E402

ROSTER = 2000
BATCH = 5000


def add_consults(size: int, seed: int = 11) -> None:
    rnd = random.Random(seed)
    first_id = 1_000_000
    for start in range(0, size, BATCH):
        consults, offers = [], []
        for n in range(start, min(start + BATCH, size)):
            submitted = NOW - timedelta(minutes=rnd.randint(10, 2 * 365 * 24 * 60))
            waiting = rnd.random() < 0.05
            hours = sorted(rnd.uniform(0.05, 80) for _ in range(4))
            status = (rnd.choice((ConsultStatus.SUBMITTED, ConsultStatus.OFFERED,
                                  ConsultStatus.ESCALATED)) if waiting else
                      ConsultStatus.CLOSED)
            consult_id = first_id + n
            consults.append({
                "id": consult_id, "clinic_id": 1, "created_by_id": 1,
                "specialist_id": None if waiting else rnd.randint(2, ROSTER + 1),
                "status": status, "patient_ref": f"B{n}", "patient_sex": Sex.FEMALE,
                "presenting_problem": "-", "question": "-",
                "specialty_id": rnd.randint(1, SPECIALTIES),
                "urgency": rnd.choice(list(Urgency)), "mode": ConsultMode.WRITTEN,
                "languages": ",".join(rnd.sample(["en", "fr", "es", "pt", "ar", "sw"], 2)),
                "created_at": submitted, "updated_at": submitted, "submitted_at": submitted,
                "accepted_at": None if waiting else submitted + timedelta(hours=hours[1]),
                "answered_at": None if waiting else submitted + timedelta(hours=hours[2]),
                "closed_at": None if waiting else submitted + timedelta(hours=hours[3]),
                "outcome": None if waiting else rnd.choice(list(Outcome)),
                "rating": None if waiting else rnd.randint(1, 5),
                "referral_avoided": None if waiting else rnd.random() < 0.5,
                "course_changed": None if waiting else rnd.random() < 0.4})
            for k, specialist in enumerate(rnd.sample(range(2, ROSTER + 2), rnd.randint(1, 3))):
                offers.append({
                    "consult_id": consult_id, "specialist_id": specialist,
                    "status": rnd.choice((OfferStatus.DECLINED, OfferStatus.EXPIRED,
                                          OfferStatus.ACCEPTED)),
                    "created_at": submitted + timedelta(hours=hours[0] * (k + 1))})
        db.session.execute(insert(Consult), consults)
        db.session.execute(insert(Offer), offers)
    db.session.commit()


def measure(url: str, size: int, runs: int) -> dict[str, float]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                      "SWEEPER_INTERVAL_SECONDS": 0, "WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
        build(ROSTER)
        add_consults(size)
        db.session.execute(insert(User), [{
            "id": ROSTER + 10, "email": "coordinator@example.org", "name": "Coordinator",
            "role": Role.COORDINATOR,
            "password_hash": "!", "timezone": "UTC"}])
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        clock.freeze(NOW)
        coordinator = db.session.query(User).filter_by(role=Role.COORDINATOR).one()
        services.compute_room(Filters())  # warm up
        cold = []
        for _ in range(runs):
            t0 = time.perf_counter()
            services.compute_room(Filters())
            db.session.rollback()
            cold.append((time.perf_counter() - t0) * 1000)
        client = app.test_client()
        with client.session_transaction() as session:
            session["_user_id"] = coordinator.get_id()
            session["_fresh"] = True
        app.config["SITUATION_CACHE_SECONDS"] = 15
        page_bytes, pages = 0, []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            response = client.get("/situation")
            pages.append((time.perf_counter() - t0) * 1000)
            page_bytes = len(response.data) if response.status_code == 200 else -1
        clock.freeze(None)
        db.session.remove()
        db.engine.dispose()
    return {"size": size, "p50": statistics.median(cold), "max": max(cold),
            "page_first": pages[0], "page_p50": statistics.median(pages[1:]),
            "bytes": page_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgres", help="SQLAlchemy URL of a PostgreSQL database to empty")
    args = parser.parse_args()
    print(f"\nevery figure computed (compute_room) and the page (GET /situation, figures "
          f"reused until the data changes); roster {ROSTER}; {args.runs} runs")
    print(f"{'consults':>9} {'cold p50':>9} {'cold max':>9} {'x':>5} {'page 1st':>9} "
          f"{'page p50':>9} {'x':>5} {'page B':>8}")
    first = None
    for size in (int(s) for s in args.sizes.split(",")):
        if args.postgres:
            reset_postgres(args.postgres)
            url = args.postgres
        else:
            url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-situation-')}/bench.sqlite"
        result = measure(url, size, args.runs)
        first = first or result
        print(f"{size:>9} {result['p50']:>9.1f} {result['max']:>9.1f} "
              f"{result['p50'] / first['p50']:>5.2f} {result['page_first']:>9.1f} "
              f"{result['page_p50']:>9.1f} {result['page_p50'] / first['page_p50']:>5.2f} "
              f"{result['bytes']:>8}", flush=True)


if __name__ == "__main__":
    main()
