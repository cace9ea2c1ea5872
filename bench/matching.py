"""Benchmark: time to rank the candidates for one consult, by roster size and database.

    .venv/bin/python bench/matching.py                       # SQLite, 1k/10k/100k
    .venv/bin/python bench/matching.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test_matching

Builds each roster from scratch (50 specialties, 30 languages, time zones worldwide, weekly
windows, some leave, a history of consults), then times rank_specialists() for many consults
and prints p50/p99 and how the time grew compared with the roster. The PostgreSQL database
given is emptied (DROP SCHEMA public CASCADE) first.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# bench/http.py would shadow the standard library's http: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TELEHEALTH_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench-matching-"))
os.environ.setdefault("TELEHEALTH_SECRET_KEY", "bench")

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from telehealth import clock, create_app  # noqa: E402
from telehealth.accounts.models import (  # noqa: E402
    Role,
    Specialty,
    User,
    UserLanguage,
    user_specialties,
)
from telehealth.clinics.models import Clinic  # noqa: E402
from telehealth.consults.models import (  # noqa: E402
    Consult,
    ConsultMode,
    ConsultStatus,
    Sex,
    Urgency,
)
from telehealth.extensions import db  # noqa: E402
from telehealth.matching.ranking import rank_specialists  # noqa: E402
from telehealth.roster.models import (  # noqa: E402
    AvailabilityWindow,
    CredentialStatus,
    LeavePeriod,
    ProfileStatus,
    SpecialistProfile,
)

SPECIALTIES = 50
LANGUAGES = ["en", "fr", "es", "pt", "ar", "sw", "de", "it", "ru", "zh", "ja", "hi", "bn", "ur",
             "fa", "tr", "pl", "nl", "sv", "ko", "vi", "th", "id", "ms", "ha", "yo", "am", "so",
             "uk", "ro"]
ZONES = ["Pacific/Auckland", "Australia/Sydney", "Australia/Perth", "Asia/Tokyo", "Asia/Seoul",
         "Asia/Shanghai", "Asia/Singapore", "Asia/Bangkok", "Asia/Kolkata", "Asia/Karachi",
         "Asia/Dubai", "Asia/Tehran", "Europe/Moscow", "Africa/Nairobi", "Africa/Cairo",
         "Europe/Athens", "Africa/Johannesburg", "Europe/Berlin", "Europe/Paris",
         "Africa/Lagos", "Europe/London", "Europe/Lisbon", "Atlantic/Azores",
         "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "America/Halifax",
         "America/Montreal", "America/New_York", "America/Chicago", "America/Denver",
         "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "America/Lima",
         "America/Bogota", "America/Mexico_City", "Asia/Manila", "Asia/Jakarta",
         "Asia/Dhaka", "Asia/Kathmandu", "Africa/Casablanca", "Europe/Istanbul"]
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def build(size: int, seed: int = 7) -> list[Consult]:
    """Fill an empty, migrated database with a roster of `size`; return consults to rank."""
    rnd = random.Random(seed)
    db.session.execute(insert(Specialty), [
        {"code": f"s{i:02d}", "stored_name": f"Specialty {i}"} for i in range(SPECIALTIES)])
    db.session.execute(insert(Clinic), [{"name": "Bench clinic", "country": "CD",
                                         "timezone": "Africa/Lubumbashi", "languages": "fr,en"}])
    db.session.execute(insert(User), [{
        "email": "clinician@example.org", "name": "Clinician", "password_hash": "!",
        "role": Role.CLINICIAN, "clinic_id": 1, "timezone": "UTC"}])
    language_weights = [1 / (rank + 1) for rank in range(len(LANGUAGES))]
    batch = 5000
    for start in range(0, size, batch):
        ids = range(start + 2, min(start + batch, size) + 2)  # user 1 is the clinician
        db.session.execute(insert(User), [{
            "id": i, "email": f"doc{i}@example.org", "name": f"Dr {i}", "password_hash": "!",
            "role": Role.SPECIALIST, "timezone": rnd.choice(ZONES)} for i in ids])
        db.session.execute(insert(user_specialties), [
            {"user_id": i, "specialty_id": s} for i in ids
            for s in rnd.sample(range(1, SPECIALTIES + 1), rnd.choice((1, 2, 2, 3)))])
        db.session.execute(insert(UserLanguage), [
            {"user_id": i, "language": lang, "level": rnd.randint(1, 3)} for i in ids
            for lang in set(rnd.choices(LANGUAGES, language_weights, k=rnd.randint(1, 3)))])
        db.session.execute(insert(SpecialistProfile), [{
            "user_id": i,
            "status": ProfileStatus.ACTIVE if rnd.random() < 0.9 else ProfileStatus.SUSPENDED,
            "capacity": rnd.randint(1, 5),
            "licence_expires_on": (NOW + timedelta(days=rnd.randint(-60, 900))).date(),
            "credential_status": CredentialStatus.VERIFIED if rnd.random() < 0.85
            else CredentialStatus.UNVERIFIED,
            "response_minutes_avg": rnd.uniform(5, 600) if rnd.random() < 0.7 else None,
            "responses_count": rnd.randint(0, 40)} for i in ids])
        windows = []
        for i in ids:
            start_hour = rnd.randint(6, 20)
            for day in rnd.sample(range(7), rnd.randint(2, 5)):
                windows.append({"user_id": i, "weekday": day, "start_minute": start_hour * 60,
                                "end_minute": min(start_hour * 60 + rnd.choice((120, 240)),
                                                  1440)})
        db.session.execute(insert(AvailabilityWindow), windows)
        db.session.execute(insert(LeavePeriod), [{
            "user_id": i, "starts_at": NOW - timedelta(days=2), "ends_at": NOW + timedelta(days=5),
            "reason": ""} for i in ids if rnd.random() < 0.03])
    # A history: one accepted or answered consult per five specialists.
    history = []
    for n in range(size // 5):
        history.append({
            "clinic_id": 1, "created_by_id": 1, "specialist_id": rnd.randint(2, size + 1),
            "status": rnd.choice((ConsultStatus.ACCEPTED, ConsultStatus.CLOSED)),
            "patient_ref": f"H{n}", "patient_sex": Sex.FEMALE, "presenting_problem": "-",
            "question": "-", "specialty_id": rnd.randint(1, SPECIALTIES),
            "urgency": Urgency.ROUTINE, "mode": ConsultMode.WRITTEN, "languages": "en",
            "accepted_at": NOW - timedelta(days=rnd.randint(0, 120))})
    for start in range(0, len(history), batch):
        db.session.execute(insert(Consult), history[start:start + batch])
    db.session.commit()
    # The consults to rank: never saved (no offers yet), like one just submitted.
    return [
        Consult(id=10_000_000 + n, specialty_id=rnd.randint(1, SPECIALTIES),
                urgency=rnd.choice(list(Urgency)),
                languages=",".join(rnd.sample(["en", "fr", "es", "pt", "ar", "sw"], 2)))
        for n in range(200)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(url: str, size: int) -> dict[str, float]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                      "SWEEPER_INTERVAL_SECONDS": 0})
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        consults = build(size)
        built = time.perf_counter() - started
        db.session.execute(text("ANALYZE"))  # planner statistics, as a live database has
        db.session.commit()
        clock.freeze(NOW)
        candidates = []
        for consult in consults[:10]:  # warm the caches and the statement cache
            rank_specialists(consult)
        timings = []
        for consult in consults:
            t0 = time.perf_counter()
            ranked = rank_specialists(consult, limit=20)
            timings.append((time.perf_counter() - t0) * 1000)
            candidates.append(len(ranked))
        clock.freeze(None)
        db.session.remove()
        db.engine.dispose()
    return {"size": size, "p50": statistics.median(timings), "p99": percentile(timings, 0.99),
            "build_s": built, "found": statistics.mean(candidates)}


def measure_sweep(url: str, roster: int, due: int, seed: int = 5) -> dict[str, float]:
    """Time one sweep of `due` offered consults whose only offer is past its deadline, and
    one ranking call on the same consults (the mean of 200), in the same run."""
    from telehealth.matching.models import Offer, OfferStatus
    from telehealth.matching.ranking import offer_fanout
    from telehealth.matching.sweeper import sweep_once

    # The sweep as production runs it: its notifications are handed to the job queue (Redis,
    # a queue of this run's own, emptied after) for the Celery worker to deliver, not sent
    # inside the sweep. Under TESTING alone jobs run eagerly, so each batch's commit also
    # delivered every offer's e-mail in line (about 9 ms a due consult): the mailer's cost,
    # not the sweeper's. Without Redis the jobs only wait in this process (none runs).
    queue = f"bench-sweep-{os.getpid()}"
    broker = os.environ.get("TELEHEALTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    try:
        import redis

        redis.Redis.from_url(broker, socket_timeout=2).ping()
        jobs: dict[str, object] = {"JOBS_BROKER_URL": broker, "JOBS_QUEUE": queue}
    except Exception:  # noqa: BLE001 - any failure: no broker here
        broker, jobs = "", {"JOBS_EAGER": False, "JOBS_IN_PROCESS": False}
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                      "SWEEPER_INTERVAL_SECONDS": 0, **jobs})
    rnd = random.Random(seed)
    with app.app_context():
        upgrade()
        build(roster)
        first = db.session.scalar(text("SELECT max(id) FROM consults")) or 0
        created = NOW - timedelta(hours=30)
        rows = [{"id": first + 1 + n, "clinic_id": 1, "created_by_id": 1,
                 "status": ConsultStatus.OFFERED, "patient_ref": f"D{n}",
                 "patient_sex": Sex.FEMALE, "presenting_problem": "-", "question": "-",
                 "specialty_id": rnd.randint(1, SPECIALTIES),
                 "urgency": rnd.choices(list(Urgency), [70, 25, 5])[0],
                 "mode": ConsultMode.WRITTEN, "languages": ",".join(rnd.sample(LANGUAGES[:6], 2)),
                 "created_at": created, "updated_at": created, "submitted_at": created}
                for n in range(due)]
        db.session.execute(insert(Consult), rows)
        db.session.execute(insert(Offer), [{
            "consult_id": r["id"], "specialist_id": rnd.randint(2, roster + 1),
            "status": OfferStatus.PENDING, "created_at": created,
            "expires_at": NOW - timedelta(minutes=5)} for r in rows])
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("SELECT setval(pg_get_serial_sequence('consults', 'id'), "
                                    "(SELECT max(id) FROM consults))"))
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        clock.freeze(NOW)
        sample = [db.session.get(Consult, r["id"]) for r in rows[:200]]
        for consult in sample[:10]:
            rank_specialists(consult, limit=offer_fanout(consult.urgency))
        t0 = time.perf_counter()
        for consult in sample:
            rank_specialists(consult, limit=offer_fanout(consult.urgency))
        ranking_ms = (time.perf_counter() - t0) * 1000 / len(sample)
        db.session.rollback()
        db.session.expunge_all()
        t0 = time.perf_counter()
        result = sweep_once()
        sweep_s = time.perf_counter() - t0
        clock.freeze(None)
        db.session.remove()
        db.engine.dispose()
    if broker:
        import redis

        redis.Redis.from_url(broker).delete(queue)
    per_consult = sweep_s * 1000 / due
    return {"sweep_s": sweep_s, "per_consult_ms": per_consult, "ranking_ms": ranking_ms,
            "ratio": per_consult / ranking_ms, "advanced": result.advanced,
            "expired": result.expired, "reoffered": result.reoffered}


def reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--postgres", help="SQLAlchemy URL of a PostgreSQL database to empty")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--sweep-due", type=int, default=3000,
                        help="due consults in the sweep measurement (0: skip it)")
    parser.add_argument("--sweep-roster", type=int, default=10_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    targets = []
    if not args.no_sqlite:
        targets.append("sqlite")
    if args.postgres:
        targets.append("postgresql")
    for target in targets:
        print(f"\n{target}: rank_specialists(consult, limit=20), 200 consults per roster")
        print(f"{'roster':>8} {'p50 ms':>8} {'p99 ms':>8} {'found':>6} {'build s':>8} "
              f"{'roster x':>9} {'p50 x':>7}")
        first = None
        for size in sizes:
            if target == "sqlite":
                folder = tempfile.mkdtemp(prefix="bench-matching-")
                url = f"sqlite:///{folder}/bench.sqlite"
            else:
                url = args.postgres
                reset_postgres(url)
            result = measure(url, size)
            first = first or result
            print(f"{size:>8} {result['p50']:>8.1f} {result['p99']:>8.1f} {result['found']:>6.1f} "
                  f"{result['build_s']:>8.1f} {size / first['size']:>9.0f} "
                  f"{result['p50'] / first['p50']:>7.1f}", flush=True)
        if args.sweep_due:
            if target == "sqlite":
                url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-sweep-')}/bench.sqlite"
            else:
                url = args.postgres
                reset_postgres(url)
            sweep = measure_sweep(url, args.sweep_roster, args.sweep_due)
            print(f"{target}: one sweep of {args.sweep_due:,} due consults, roster "
                  f"{args.sweep_roster:,}: {sweep['sweep_s']:.1f} s, "
                  f"{sweep['per_consult_ms']:.1f} ms per due consult; one ranking call "
                  f"{sweep['ranking_ms']:.1f} ms; ratio {sweep['ratio']:.2f}x (target <= 2x); "
                  f"expired {sweep['expired']}, advanced {sweep['advanced']}, "
                  f"offered again {sweep['reoffered']}", flush=True)


if __name__ == "__main__":
    main()
