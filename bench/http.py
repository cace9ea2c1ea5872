"""Benchmark: every list page through the served app, at 1,000 and 100,000 consults.

    .venv/bin/python bench/http.py --reuse \\
        --postgres 'postgresql+psycopg://postgres@127.0.0.1:5432/bench_{size}'

Each size has its own PostgreSQL database (`{size}` becomes 1k, 100k; created when missing),
emptied (DROP SCHEMA public CASCADE), migrated and filled through the models' tables
(bench/fill.py: 10,000 specialists, 200 clinics, consults over two years with notes and
offers). With --reuse a database that an earlier run filled the same way is kept (only
migrated and analysed again): the 100,000 fill takes minutes. Every size is then served at
once, each with the README's production command (gunicorn, one worker, threads) plus a config
file that only adds an `X-SQL-Statements` header (bench/gunicorn_count.py), and for each role
CLIENTS signed-in clients per size walk that role's pages (PAGES below: one line per page),
all sizes at the same time so that they share the machine's load. Printed per page:
p50/p95/p99, requests/s, bytes and SQL statements per request, both sizes side by side with
the growth of p50, and the issue's targets.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the standard library's `http`: keep its folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TELEHEALTH_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench-http-"))
os.environ.setdefault("TELEHEALTH_SECRET_KEY", "bench-http")

import requests  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.exc import ProgrammingError  # noqa: E402

if TYPE_CHECKING:
    from bench.fill import Network

PASSWORD = "bench password 2026"
# Bumped when bench/fill.py makes different data: --reuse then fills again.
FILL_SHAPE = 3
# The busiest volunteer's own work does not grow with the network: at every size they have
# BUSIEST_WAITING offers waiting and at least BUSIEST_CONSULTS consults, so their dashboard
# holds full pages at 1,000 consults as at 100,000 and the two sizes compare the same page.
BUSIEST_WAITING = 30
BUSIEST_CONSULTS = 60
# Likewise the escalation queue (and the dashboard's escalations) holds full pages at 1,000.
ESCALATED = 30


@dataclass(frozen=True)
class Page:
    name: str
    role: str  # coordinator, admin, clinician, specialist
    path: str  # {consult} and {escalated} are filled from the data


# Every dashboard, list, API list, the roster, load report, admin users and a consult page.
# Another page is one more line here.
PAGES = [
    Page("coordinator dashboard", "coordinator", "/"),
    Page("coordinator dashboard, filtered", "coordinator", "/?status=all&specialty=3&sort=newest"),
    Page("escalation queue", "coordinator", "/escalations"),
    Page("/api/consults (coordinator)", "coordinator", "/api/consults"),
    Page("/roster", "coordinator", "/roster"),
    Page("/roster/load", "coordinator", "/roster/load"),
    Page("matching (candidates)", "coordinator", "/consults/{escalated}/matching"),
    Page("consult page (coordinator)", "coordinator", "/consults/{consult}"),
    Page("admin dashboard", "admin", "/"),
    Page("/admin/users", "admin", "/admin/users"),
    Page("/admin/clinics", "admin", "/admin/clinics"),
    Page("clinician dashboard", "clinician", "/"),
    Page("/api/consults (clinician)", "clinician", "/api/consults"),
    Page("consult page (clinician)", "clinician", "/consults/{consult}"),
    Page("specialist dashboard (busiest)", "specialist", "/"),
    Page("/api/consults (specialist)", "specialist", "/api/consults"),
    Page("situation room", "coordinator", "/situation"),
    Page("situation room, filtered", "coordinator", "/situation?period=30&specialty=spec01"),
    Page("/situation/api", "coordinator", "/situation/api"),
    Page("/situation/demand.csv", "coordinator", "/situation/demand.csv"),
]
TARGETS = {"growth": 1.5, "statements": 25, "bytes": 100 * 1024, "p99_ms": 300.0}


@dataclass
class Stats:
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the server thread's CPU per request
    errors: int = 0  # 5xx
    refused: int = 0  # no answer: connection refused, reset or timed out
    why: list[str] = field(default_factory=list)  # what the client saw, for those
    retried: int = 0  # a kept-alive connection closed under the request, asked again
    other: int = 0  # any other non-200
    elapsed: float = 0.0

    def pct(self, q: float) -> float:
        if not self.times:
            return float("nan")
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# ---------------------------------------------------------------- the data


def size_label(size: int) -> str:
    """1000 -> 1k, 100000 -> 100k: the `{size}` of a database URL."""
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def ensure_database(url: str) -> None:
    """Create the database named in `url` when it does not exist yet."""
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                           {"name": target.database}):
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def filled_with(url: str) -> dict[str, int] | None:
    """What an earlier fill of this database made (its marker table), or None."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.scalar(text("SELECT to_regclass('public.bench_fill') IS NOT NULL")):
                return None
            try:
                row = conn.execute(text("SELECT consults, specialists, clinics, shape "
                                        "FROM bench_fill")).mappings().first()
            except ProgrammingError:  # an older shape of the marker
                return None
            return dict(row) if row else None
    finally:
        engine.dispose()


def fill(url: str, consults: int, specialists: int, clinics: int, reuse: bool = False
         ) -> dict[str, object]:
    """Empty, migrate and fill the database; return who to sign in as and what to open.

    With `reuse`, a database an earlier run filled with the same sizes is kept (a 100,000
    fill takes minutes): it is only migrated (new indexes) and analysed again."""
    from flask_migrate import upgrade

    from bench.fill import fill_consults, fill_roster, reset_sequences
    from telehealth import create_app
    from telehealth.accounts.services import hash_password
    from telehealth.extensions import db

    ensure_database(url)
    wanted = {"consults": consults, "specialists": specialists, "clinics": clinics,
              "shape": FILL_SHAPE}
    kept = reuse and filled_with(url) == wanted
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    if not kept:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SWEEPER_INTERVAL_SECONDS": 0})
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        if kept:
            net = filled_network()
        else:
            net = fill_roster(specialists, clinics, hash_password(PASSWORD))
            fill_consults(net, consults, busy_share=max(0.02, BUSIEST_CONSULTS / consults),
                          busiest_waiting=BUSIEST_WAITING, escalated=ESCALATED)
            reset_sequences()
            db.session.execute(text("CREATE TABLE bench_fill (consults int, specialists int, "
                                    "clinics int, shape int)"))
            db.session.execute(text("INSERT INTO bench_fill VALUES (:consults, :specialists, "
                                    ":clinics, :shape)"), wanted)
            db.session.commit()
        opened = pages_opened(net)
        took = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"  {'kept' if kept else 'filled'} {consults:,} consults, {specialists:,} "
          f"specialists, {clinics} clinics in {took:.0f} s", flush=True)
    return opened


def filled_network() -> Network:
    """Who to sign in as in a database bench/fill.py filled (inside an app context)."""
    from bench.fill import Network
    from telehealth.consults.models import Consult
    from telehealth.extensions import db

    # The fill is deterministic: the same people are the first and the busiest.
    net = Network(coordinator_emails=[f"coordinator{n}@bench.example.org" for n in range(3)],
                  clinician_emails=["clinician1-0@bench.example.org"],
                  specialist_emails=["specialist0@bench.example.org"])
    net.consult_ids = list(db.session.scalars(
        select(Consult.id).where(Consult.clinic_id == 1).order_by(Consult.id.desc()).limit(20)))
    return net


def pages_opened(net: Network) -> dict[str, object]:
    """Who signs in and the consults the pages open: {"net", "escalated", "consult"}."""
    from telehealth.consults.models import Consult, ConsultStatus
    from telehealth.extensions import db
    from telehealth.notes.models import Note

    escalated = db.session.scalar(select(Consult.id).where(
        Consult.status == ConsultStatus.ESCALATED).order_by(Consult.id.desc()).limit(1))
    # The consult page opened: the clinic's newest consult with a thread of notes.
    with_notes = db.session.scalar(select(func.max(Note.consult_id)).join(
        Consult, Consult.id == Note.consult_id).where(Consult.clinic_id == 1))
    return {"net": net, "escalated": escalated or net.consult_ids[0],
            "consult": with_notes or net.consult_ids[0]}


def email_of(net: Network, role: str) -> str:
    """The person a role's clients sign in as."""
    return {"coordinator": net.coordinator_emails[0], "admin": net.admin_email,
            "clinician": net.clinician_emails[0], "specialist": net.specialist_emails[0]}[role]


def page_path(page: Page, opened: dict[str, object]) -> str:
    """The page's path with the consults it opens filled in."""
    return page.path.format(consult=opened["consult"], escalated=opened["escalated"])


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(url: str, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    """The README's production command (plus the statement-count header)."""
    port = free_port()
    env = os.environ | {"TELEHEALTH_DATABASE_URL": url, "TELEHEALTH_THREADS": str(threads),
                        "TELEHEALTH_SWEEPER_INTERVAL": "0"}
    command = [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "bench/gunicorn_count.py"),
               "-w", "1", "--threads", str(threads), "-b", f"127.0.0.1:{port}",
               "--log-level", "warning", "wsgi:app"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _attempt in range(600):
        try:  # the port opens before the worker has loaded the app
            requests.get(f"{base}/login", timeout=60)
            return process, base
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def sign_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/login").text
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    data = {"email": email, "password": PASSWORD, "csrf_token": match.group(1) if match else ""}
    response = session.post(f"{base}/login", data=data, allow_redirects=False)
    if response.status_code != 302:
        raise SystemExit(f"cannot sign in as {email}: {response.status_code}")
    return session


# ---------------------------------------------------------------- the load


def drive(servers: dict[int, str], data: dict[int, dict[str, object]], clients: int,
          rounds: int, think: float) -> dict[int, dict[str, Stats]]:
    """Role after role, `clients` signed-in clients per size walk the role's pages `rounds`
    times (after one unmeasured warm-up round), every size's clients at the same time: the
    sizes share the machine's load at every moment, so their ratio is a same-run ratio even
    when other work comes and goes."""
    stats = {size: {page.name: Stats() for page in PAGES} for size in servers}
    lock = threading.Lock()
    for role in ("coordinator", "admin", "clinician", "specialist"):
        pages = [p for p in PAGES if p.role == role]
        workers = []
        for size, base in servers.items():
            email = email_of(data[size]["net"], role)  # type: ignore[arg-type]
            urls = [base + page_path(page, data[size]) for page in pages]
            sessions = [sign_in(base, email) for _n in range(clients)]
            for url in urls:  # warm-up: caches, prepared plans
                sessions[0].get(url)
            workers += [(size, session, urls, n) for n, session in enumerate(sessions)]

        def client(size: int, session: requests.Session, urls: list[str], offset: int,
                   pages: list[Page] = pages, role: str = role) -> None:
            # Think time: exponentially distributed around `think` (the closed-loop model of
            # TPC-W and most load tools), and a random first wait. With a fixed wait the 20
            # clients of a role stayed in step and hit the server in bursts of 20 requests at
            # once, 1 s apart: a load no group of people reading pages makes. Seeded per
            # client, so two runs make the same arrivals.
            rng = random.Random(f"{size}-{role}-{offset}")
            if think:
                time.sleep(rng.uniform(0, think))
            for n in range(rounds * len(pages)):
                index = (n + offset) % len(pages)
                s = stats[size][pages[index].name]
                started = time.perf_counter()
                try:
                    try:
                        response = session.get(urls[index], timeout=60)
                    except requests.ConnectionError as exc:
                        # The server closed an idle kept-alive connection (gunicorn's
                        # --keep-alive, 2 s) as the request went out on it: a browser asks
                        # again on a new connection, and so does this client, once (counted).
                        if "Connection aborted" not in str(exc):
                            raise
                        with lock:
                            s.retried += 1
                        response = session.get(urls[index], timeout=60)
                except requests.RequestException as exc:
                    with lock:
                        s.refused += 1
                        s.why.append(f"{type(exc).__name__} after "
                                     f"{time.perf_counter() - started:.1f} s: {exc}"[:160])
                    continue
                took = time.perf_counter() - started
                with lock:
                    s.times.append(took)
                    s.sizes.append(len(response.content))
                    s.statements.append(int(response.headers.get("X-SQL-Statements", -1)))
                    s.cpu_ms.append(float(response.headers.get("X-CPU-Ms", "nan")))
                    if response.status_code >= 500:
                        s.errors += 1
                    elif response.status_code != 200:
                        s.other += 1
                if think:
                    time.sleep(rng.expovariate(1 / think))

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=worker) for worker in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        for size in servers:
            for page in pages:
                stats[size][page.name].elapsed = elapsed
    return stats


# ---------------------------------------------------------------- the report


def report(results: dict[int, dict[str, Stats]]) -> None:
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    head = ["page"]
    for size in sizes:
        head += [f"p50/p95/p99 ms @{size:,}", f"req/s @{size:,}", f"KB @{size:,}",
                 f"SQL @{size:,}", f"CPU ms @{size:,}"]
    head += ["p50 growth"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    failures, notes = [], []
    for page in PAGES:
        cells = [page.name]
        for size in sizes:
            s = results[size][page.name]
            rate = len(s.times) / s.elapsed if s.elapsed else 0.0
            size_kb = statistics.mean(s.sizes) / 1024 if s.sizes else 0.0
            sql = max(s.statements) if s.statements else -1
            cpu = statistics.median(s.cpu_ms) if s.cpu_ms else float("nan")
            cells += [f"{s.pct(.5):.0f} / {s.pct(.95):.0f} / {s.pct(.99):.0f}", f"{rate:.1f}",
                      f"{size_kb:.1f}", str(sql), f"{cpu:.1f}"]
            if s.errors:
                failures.append(f"{page.name} @{size}: {s.errors} 5xx")
            if s.refused:
                failures.append(f"{page.name} @{size}: {s.refused} without an answer "
                                f"({'; '.join(s.why[:2])})")
            if s.other:
                failures.append(f"{page.name} @{size}: {s.other} non-200")
            if s.retried:
                notes.append(f"{page.name} @{size}: {s.retried} asked again on a new connection")
            if sql > TARGETS["statements"]:
                failures.append(f"{page.name} @{size}: {sql} statements")
            if s.sizes and max(s.sizes) > TARGETS["bytes"]:
                failures.append(f"{page.name} @{size}: {max(s.sizes)} bytes")
            if s.pct(.99) > TARGETS["p99_ms"]:
                failures.append(f"{page.name} @{size}: p99 {s.pct(.99):.0f} ms")
        growth = results[large][page.name].pct(.5) / max(results[small][page.name].pct(.5), 1e-9)
        cells.append(f"{growth:.2f}×")
        if growth > TARGETS["growth"]:
            failures.append(f"{page.name}: p50 grew {growth:.2f}×")
        print("| " + " | ".join(cells) + " |")
    print("\nTargets: p50 growth ≤ 1.5×, ≤ 25 statements, ≤ 100 KB, p99 ≤ 300 ms, no 5xx.")
    print("Missed:\n  " + "\n  ".join(failures) if failures else "All targets met.")
    if notes:
        print("Kept-alive connections closed by the server under a request (asked again):\n  "
              + "\n  ".join(notes))


def serve_and_drive(sizes: list[int], urls: dict[int, str], data: dict[int, dict[str, object]],
                    args: argparse.Namespace) -> dict[int, dict[str, Stats]]:
    """Serve these sizes at once, drive them, stop the servers."""
    processes, servers = [], {}
    try:
        for size in sizes:
            process, servers[size] = serve(urls[size], args.threads)
            processes.append(process)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        results = drive(servers, data, args.clients, args.rounds, args.think)
        total = sum(len(s.times) for r in results.values() for s in r.values())
        took = time.perf_counter() - started
        print(f"  {', '.join(f'{size:,}' for size in sizes)} consults: {total:,} requests in "
              f"{took:.0f} s ({total / took:.1f} req/s); load average {load:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end", flush=True)
        return results
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    # Stopped from outside: still stop the server (the finally below).
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", required=True,
                        help="a database this bench may empty; {size} in it (1k, 100k) gives "
                             "each size its own database, created when missing")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a database an earlier run filled with the same sizes")
    parser.add_argument("--fill-only", action="store_true", help="fill, then stop")
    parser.add_argument("--sizes", default="1000,100000", help="consults, comma-separated")
    parser.add_argument("--specialists", type=int, default=10_000)
    parser.add_argument("--clinics", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20, help="signed-in clients per role")
    parser.add_argument("--rounds", type=int, default=5, help="walks of the pages per client")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds each client waits between two requests "
                             "(exponentially distributed, random first wait)")
    parser.add_argument("--threads", type=int, default=32, help="gunicorn threads (and pool)")
    parser.add_argument("--sequential", action="store_true",
                        help="serve and drive one size at a time, alone on the machine (as a "
                             "deployment serves one network), instead of every size at once")
    args = parser.parse_args()
    # The clients (160 threads in this one Python process) time each request themselves: a
    # collection pausing them all would count against the server. The same setting as the
    # served app's (wsgi.tune_collector); BENCH_CLIENT_GC="" keeps Python's defaults.
    client_gc = os.environ.get("BENCH_CLIENT_GC", "50000,20,100")
    if client_gc:
        gc.freeze()
        gc.set_threshold(*(int(part) for part in client_gc.split(",")))
    sizes = [int(s) for s in args.sizes.split(",")]
    data, urls = {}, {}
    for size in sizes:
        print(f"{size:,} consults:", flush=True)
        urls[size] = args.postgres.replace("{size}", size_label(size))
        if len(sizes) > 1 and urls[size] == args.postgres:
            raise SystemExit("the sizes are served at the same time: put {size} in --postgres")
        data[size] = fill(urls[size], size, args.specialists, args.clinics, reuse=args.reuse)
    results: dict[int, dict[str, Stats]] = {}
    if not args.fill_only:
        # At once: one run, both sizes sharing the machine (a same-run ratio under any load).
        # --sequential: each size has the machine to itself, one after the other.
        for group in ([[size] for size in sizes] if args.sequential else [sizes]):
            results |= serve_and_drive(group, urls, data, args)
    if results:
        report(results)


if __name__ == "__main__":
    main()
