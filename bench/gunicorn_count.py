"""gunicorn config used by bench/http.py only: every response says how many SQL statements
it cost (`X-SQL-Statements`) and how much CPU time its own thread spent on it (`X-CPU-Ms`,
`time.thread_time()` from the moment the WSGI call starts until the response's headers go out:
session, login, view, rendering, after-request hooks). Waiting for the GIL, the database or
another thread is not in it, so it compares the code's cost even on a loaded machine. The
serving command is otherwise the README's:

    gunicorn -c bench/gunicorn_count.py -w 1 --threads 32 wsgi:app
"""

from __future__ import annotations

import time
from typing import Any


def post_worker_init(worker: Any) -> None:
    """Count statements and CPU per request in the worker, before it serves anything."""
    from flask import g, has_request_context
    from sqlalchemy import event

    from telehealth.extensions import db

    app = worker.wsgi

    def count(*_args: Any) -> None:
        if has_request_context():
            g.sql_statements = g.get("sql_statements", 0) + 1

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", count)

    @app.after_request
    def header(response: Any) -> Any:
        response.headers["X-SQL-Statements"] = str(g.get("sql_statements", 0))
        return response

    inner = app.wsgi_app

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        started = time.thread_time()

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            spent = (time.thread_time() - started) * 1000
            return start_response(status, [*headers, ("X-CPU-Ms", f"{spent:.2f}")], *rest)

        return inner(environ, start)

    app.wsgi_app = timed
