"""The sweeper: expires offers, moves stalled consults on and offers escalated consults again
once someone can take them, in the app and from cron.

This is a transaction boundary (like a request): it commits after each step, so locks are
held briefly and a crash loses at most the consult being handled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import click
from flask import Flask

from telehealth import signals
from telehealth.extensions import db, socketio
from telehealth.matching import services

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    expired: int = 0
    advanced: int = 0
    reoffered: int = 0
    escalated: int = 0  # other features' overdue items (signals.deadlines_due)


def sweep_once(batch: int = 200) -> SweepResult:
    """Expire due offers, advance every consult left with no offer waiting, then re-offer
    escalated consults that someone not asked before can now take.

    Consults are handled `batch` at a time, one transaction per batch: the set-based
    statements (expire, lock, who still has an offer waiting) run once per batch, so a due
    consult costs about its ranking call. A batch that fails is retried one consult at a time,
    so one bad consult is logged and does not stop the others.
    """
    result = SweepResult()
    while True:
        expired = services.expire_due_offers(limit=max(batch, 500))
        db.session.commit()
        if not expired:
            break
        result.expired += expired
    stalled = services.stalled_consult_ids(limit=100_000)
    result.advanced = _in_batches(stalled, batch, services.advance_stalled,
                                  services.advance_if_stalled, "advanced")
    # Escalated consults wait for a coordinator, but someone back from leave, whose window
    # opened, just verified or new on the roster can still take them. Those this sweep has
    # just ranked and escalated are not ranked twice.
    just_ranked = set(stalled)
    escalated = [i for i in services.escalated_consult_ids(limit=100_000)
                 if i not in just_ranked]
    result.reoffered = _in_batches(escalated, batch,
                                   services.reoffer_candidates, services.reoffer_if_candidate,
                                   "offered again")
    result.escalated = _other_deadlines()
    return result


def _other_deadlines() -> int:
    """Other features' deadline clocks (an alert's verification) on this same sweep: each
    receiver in a transaction of its own, one failing logged and the others still run."""
    done = 0
    for receiver in signals.deadlines_due.receivers_for(None):
        try:
            done += int(receiver(None) or 0)
            db.session.commit()
        except Exception:
            db.session.rollback()
            logger.exception("sweeper: %r failed", receiver)
    return done


def _in_batches(consult_ids: list[int], batch: int, step_many: Callable[[list[int]], int],
                step_one: Callable[..., bool], what: str) -> int:
    """Run `step_many` on each batch in a transaction of its own; a failed batch is rolled
    back and done again consult by consult."""
    done = 0
    for start in range(0, len(consult_ids), batch):
        chunk = consult_ids[start:start + batch]
        try:
            done += step_many(chunk)
            db.session.commit()
        except Exception:
            db.session.rollback()
            logger.warning("sweeper: a batch could not be %s; one consult at a time", what)
            done += _each_consult(chunk, step_one, what)
    return done


def _each_consult(consult_ids: Iterable[int], step: Callable[..., bool], what: str) -> int:
    """Run `step` on each consult in a transaction of its own (rows another sweeper holds
    are skipped); one consult failing is logged and does not stop the others."""
    done = 0
    for consult_id in consult_ids:
        try:
            moved = step(consult_id, skip_locked=True)
            db.session.commit()
        except Exception:
            db.session.rollback()
            logger.exception("sweeper: consult %s could not be %s", consult_id, what)
            continue
        done += int(moved)
    return done


_started: set[int] = set()


def start_background_sweeper(app: Flask) -> None:
    """Run the sweeper every SWEEPER_INTERVAL_SECONDS in a background task of the app."""
    interval = float(app.config["SWEEPER_INTERVAL_SECONDS"])
    if interval <= 0 or id(app) in _started:
        return
    _started.add(id(app))
    stop = threading.Event()
    app.extensions["telehealth_sweeper_stop"] = stop

    def loop() -> None:
        while not stop.wait(interval):
            with app.app_context():
                try:
                    sweep_once()
                except Exception:
                    logger.exception("sweeper run failed")
                finally:
                    db.session.remove()

    socketio.start_background_task(loop)


def stop_background_sweeper(app: Flask) -> None:
    """Stop the app's background sweeper after its current run (tests, shutdown)."""
    stop = app.extensions.pop("telehealth_sweeper_stop", None)
    if stop is not None:
        stop.set()
        _started.discard(id(app))


def init_app(app: Flask) -> None:
    """Register `flask sweep` (the app's periodic runs are jobs: telehealth/jobs)."""

    @app.cli.command("sweep")
    @click.option("--loop", "loop_seconds", type=int, default=0,
                  help="Run again every N seconds instead of once.")
    def sweep_command(loop_seconds: int) -> None:
        """Expire unanswered offers, offer to the next specialists, escalate, re-offer."""
        import time

        while True:
            result = sweep_once()
            click.echo(f"expired {result.expired} offer(s), advanced {result.advanced} "
                       f"consult(s), offered {result.reoffered} escalated consult(s) again")
            if not loop_seconds:
                break
            time.sleep(loop_seconds)
