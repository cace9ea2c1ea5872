"""The transaction boundary: a request, a Socket.IO event or a CLI command commits once, at
its end, or rolls back. Services only flush (Indico's `RH.process` does the same).

- Requests: `TelehealthFlask` commits when the view (or a before_request hook that answers
  for it) returns, before the response leaves, so the page a POST redirects to sees the
  change. A view that raises commits nothing: the error handlers in `web` roll back.
- Refusals: a ServiceError rolls everything back; a form view names with `on_refusal` the
  page to show again, so one error handler serves every form.
- Socket.IO handlers, CLI commands and background steps: `@committed`, or `with
  unit_of_work():` around each step of a loop that must keep its earlier steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from flask import Flask, g
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import OperationalError

from telehealth.extensions import db

# What a save that waited too long for another writer's lock answers (503): nothing of it
# was kept, and the same action again will most likely go through.
BUSY = _l("The server is busy saving other changes, so nothing of yours was saved. "
          "Please try again in a moment.")

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block wrote, or roll it all back if it raises."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def lock_wait_ran_out(exc: BaseException) -> bool:
    """Whether a database error is a lock wait that timed out (PostgreSQL's lock_timeout,
    SQLite's busy timeout): another writer holds the lock; trying again later may work."""
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "55P03" or "database is locked" in str(orig)


def committed(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` as one unit of work (a Socket.IO handler, a CLI command, a job)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with unit_of_work():
            return func(*args, **kwargs)

    return wrapper


def on_refusal(page: Callable[[], Any]) -> None:
    """If a service refuses what this request does next, show `page` again with the reason.

    A form view calls this before the service, with the form as typed; the error handlers
    (telehealth/web.py) roll back, flash the refusal and answer with this page instead of
    the error page (JSON callers still get JSON), with the refusal's status.
    """
    g.refusal_page = page


def take_refusal_page() -> Callable[[], Any] | None:
    page: Callable[[], Any] | None = g.pop("refusal_page", None)
    return page


class TelehealthFlask(Flask):
    """Flask with one commit per request."""

    def preprocess_request(self) -> ResponseReturnValue | None:
        # A before_request hook that answers itself (the idle time-out signing someone out)
        # ends the request here: what it recorded is committed like a view's work.
        answer = super().preprocess_request()
        if answer is not None:
            db.session.commit()
        return answer

    def dispatch_request(self) -> ResponseReturnValue:
        answer = super().dispatch_request()
        db.session.commit()
        return answer
