"""Work that happens later or elsewhere: outbox delivery, the offer sweeper, machine translation,
conference decks' pages.

Celery with a broker when one is configured, the same jobs in-process otherwise (see
`runner.py`). Features never start threads of their own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from celery import Celery
from celery.signals import worker_process_init
from flask import Flask, current_app

from telehealth import signals
from telehealth.extensions import db
from telehealth.jobs import tasks
from telehealth.jobs.runner import InProcessRunner, periodic_jobs, run_logged
from telehealth.notifications.services import outbox_committed

logger = logging.getLogger(__name__)

_CELERY = "celery"
_RUNNER = "telehealth_jobs_runner"


def task_name(name: str) -> str:
    return f"telehealth.{name}"


def make_celery(app: Flask) -> Celery:
    """A Celery app on the configured broker, with every job and the periodic schedule."""
    celery = Celery("telehealth", broker=app.config["JOBS_BROKER_URL"], set_as_current=False)
    celery.conf.update(
        task_ignore_result=True,
        task_default_queue=app.config["JOBS_QUEUE"],
        timezone="UTC",
        broker_connection_retry_on_startup=True,
        # A request only publishes "deliver the outbox now": if the broker is away it gives up
        # quickly; the periodic run delivers instead.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.5},
        beat_schedule={f"{name} every {seconds:g}s": {"task": task_name(name),
                                                       "schedule": seconds}
                       for name, seconds in periodic_jobs(app).items()},
        beat_schedule_filename=str(Path(app.instance_path) / "celerybeat-schedule"),
    )
    for name in tasks.TASKS:
        _register(celery, app, name)

    def fresh_connections(**_: Any) -> None:
        # A forked worker process must not share its parent's database connections.
        with app.app_context():
            db.engine.dispose(close=False)

    worker_process_init.connect(fresh_connections, weak=False)
    return celery


def _register(celery: Celery, app: Flask, name: str) -> None:
    def job(*args: Any) -> Any:
        return tasks.run(app, name, *args)

    job.__name__ = name
    job.__doc__ = tasks.TASKS[name].__doc__
    celery.task(name=task_name(name))(job)


def eager(app: Flask) -> bool:
    setting = app.config.get("JOBS_EAGER")
    return bool(app.config.get("TESTING")) if setting is None else bool(setting)


def runner(app: Flask) -> InProcessRunner:
    """This app's in-process runner."""
    found: InProcessRunner | None = app.extensions.get(_RUNNER)
    if found is None:
        found = app.extensions[_RUNNER] = InProcessRunner(app)
    return found


def enqueue(name: str, *args: Any, app: Flask | None = None) -> None:
    """Have a job run soon: by a Celery worker, the in-process runner, or now (eager)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    celery: Celery | None = app.extensions.get(_CELERY)
    if celery is not None:
        celery.send_task(task_name(name), args=list(args))
    elif eager(app):
        run_logged(app, name, *args)
    else:
        runner(app).submit(name, *args)


def _deliver_soon(app: Flask, **_: Any) -> None:
    enqueue("deliver_outbox", app=app)


def _translate_soon(note_id: int, user_id: int, language: str, **_: Any) -> None:
    enqueue("machine_translate", note_id, user_id, language)


def _detect_soon(_sender: Any = None, *, area_id: int, syndrome_id: int, **_: Any) -> None:
    enqueue("surveillance_detect", area_id, syndrome_id)


def _render_deck_soon(_sender: Any = None, *, deck_id: int, **_: Any) -> None:
    enqueue("render_conference_deck", deck_id)


def init_app(app: Flask) -> None:
    """Bind the job engine; start the in-process runner when this app runs its own jobs."""
    if app.config.get("JOBS_BROKER_URL"):
        app.extensions[_CELERY] = make_celery(app)
    elif not eager(app) and app.config.get("JOBS_IN_PROCESS", True):
        runner(app).start()
    outbox_committed.connect(_deliver_soon)
    signals.machine_translation_requested.connect(_translate_soon)
    signals.outbreak_detection_wanted.connect(_detect_soon)
    signals.conference_deck_uploaded.connect(_render_deck_soon)

    @app.cli.group("jobs")
    def jobs_group() -> None:
        """Run jobs by hand."""

    @jobs_group.command("run")
    @click.argument("name", type=click.Choice(["deliver_outbox", "sweep",
                                                "surveillance_detect",
                                                "render_conference_deck"]))
    def run_command(name: str) -> None:
        """Run one job now, in this process (deliver_outbox, sweep, surveillance_detect,
        render_conference_deck: the decks whose job was lost)."""
        click.echo(f"{name}: {tasks.run(app, name)}")
