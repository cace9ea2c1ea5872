"""gunicorn config used by bench/http.py only: every response says how many SQL statements
it cost (`X-SQL-Statements`). The serving command is otherwise the README's:

    gunicorn -c bench/gunicorn_count.py -w 1 --threads 32 wsgi:app
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    """Count statements per request in the worker, before it serves anything."""
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
