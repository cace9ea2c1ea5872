"""Per-page CPU time of the served app, one request at a time, in this process.

    .venv/bin/python bench/pages_cpu.py \\
        --postgres 'postgresql+psycopg://postgres@127.0.0.1:5432/bench_100k' [--profile NAME]

The database is one bench/http.py filled (run it with --fill-only first). Every page of
bench/http.py's PAGES is asked REPEAT times by its role's signed-in client (Flask's test
client, the same app as gunicorn serves) after two warm-up requests; printed per page: the
median CPU time of the request's thread (`time.thread_time()`, so another process's load
does not count) and its SQL statements. `--profile NAME` profiles (cProfile) the pages whose
name contains NAME and prints where their CPU went.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TELEHEALTH_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench-cpu-"))
os.environ.setdefault("TELEHEALTH_SECRET_KEY", "bench-http")

from bench.http import (  # noqa: E402
    PAGES,
    PASSWORD,
    email_of,
    filled_network,
    page_path,
    pages_opened,
)


def sign_in(app: Any, email: str) -> Any:
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": match.group(1) if match else ""})
    if response.status_code != 302:
        raise SystemExit(f"cannot sign in as {email}: {response.status_code}")
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", required=True, help="a database bench/http.py filled")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", help="profile the pages whose name contains this")
    parser.add_argument("--lines", type=int, default=40, help="lines of the profile shown")
    args = parser.parse_args()

    from flask import g
    from sqlalchemy import event

    from telehealth import create_app
    from telehealth.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.postgres, "SWEEPER_INTERVAL_SECONDS": 0})
    with app.app_context():
        opened = pages_opened(filled_network())
        db.session.remove()

        def count(*_args: Any) -> None:
            g.sql_statements = g.get("sql_statements", 0) + 1

        event.listen(db.engine, "before_cursor_execute", count)
    statements: dict[str, int] = {}

    @app.after_request
    def remember(response: Any) -> Any:
        statements["last"] = g.get("sql_statements", 0)
        return response

    clients = {role: sign_in(app, email_of(opened["net"], role))  # type: ignore[arg-type]
               for role in ("coordinator", "admin", "clinician", "specialist")}
    profiler = cProfile.Profile() if args.profile is not None else None
    print(f"| page | CPU ms (median of {args.repeat}) | min | SQL |\n|---|---|---|---|")
    for page in PAGES:
        if args.profile is not None and args.profile not in page.name:
            continue
        client, path = clients[page.role], page_path(page, opened)
        for _warm in range(2):
            client.get(path)
        times = []
        for _n in range(args.repeat):
            started = time.thread_time()
            if profiler:
                profiler.enable()
            response = client.get(path)
            if profiler:
                profiler.disable()
            times.append((time.thread_time() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{page.name}: {response.status_code}")
        print(f"| {page.name} | {statistics.median(times):.1f} | {min(times):.1f} | "
              f"{statements['last']} |", flush=True)
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(args.lines)
        stats.sort_stats("tottime").print_stats(args.lines)


if __name__ == "__main__":
    main()
