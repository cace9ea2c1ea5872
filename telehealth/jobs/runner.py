"""Where jobs run: a Celery worker when a broker is configured, else a thread of this process.

`enqueue(name, *args)` hands a job (`telehealth/jobs/tasks.py`) to whichever runs here:

- a broker (`TELEHEALTH_BROKER_URL`, else `TELEHEALTH_REDIS_URL`): the job is sent to the
  Celery workers (`celery -A telehealth.jobs.celery_app worker`), periodic jobs come from
  `celery ... beat`;
- none (the embedded default): one background thread of the app process runs queued jobs
  and the periodic ones (outbox every OUTBOX_POLL_SECONDS, sweeper every
  SWEEPER_INTERVAL_SECONDS). It is started with the app, never by a request;
- eager (JOBS_EAGER, the default under TESTING): the job runs at once, in the caller's
  thread, in an app context of its own; tests see its effect when commit() returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from flask import Flask

from telehealth.jobs import tasks

logger = logging.getLogger(__name__)

Job = tuple[str, tuple[Any, ...]]


def periodic_jobs(app: Flask) -> dict[str, float]:
    """Job name -> seconds between runs (a zero interval leaves the job to cron)."""
    every = {"deliver_outbox": float(app.config["OUTBOX_POLL_SECONDS"]),
             "sweep": float(app.config["SWEEPER_INTERVAL_SECONDS"]),
             "surveillance_detect": float(app.config["SURVEILLANCE_DETECT_SECONDS"]),
             "conference_reminders": float(app.config["CONFERENCE_REMINDER_SECONDS"]),
             "render_conference_deck": float(app.config["CONFERENCE_DECK_RETRY_SECONDS"])}
    return {name: seconds for name, seconds in every.items() if seconds > 0}


def run_logged(app: Flask, name: str, *args: Any) -> Any:
    """Run a job here and now; log (never raise) its failure: it is retried or re-polled."""
    try:
        return tasks.run(app, name, *args)
    except Exception:  # noqa: BLE001 - one failed job must not stop the runner
        logger.exception("job %s%r failed", name, args)
        return None


class InProcessRunner:
    """One daemon thread that runs queued jobs in order, and the periodic ones when due."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.waiting: set[Job] = set()  # the same job queued twice runs once
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def submit(self, name: str, *args: Any) -> None:
        job = (name, args)
        with self.lock:
            if job in self.waiting:
                return
            self.waiting.add(job)
        self.jobs.put(job)

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._loop, name="telehealth-jobs", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the job in hand (tests, shutdown)."""
        self.stopping.set()
        self.jobs.put(("", ()))  # wake the thread
        if self.thread is not None:
            self.thread.join(timeout)
        self.thread = None

    def _loop(self) -> None:
        every = periodic_jobs(self.app)
        due = {name: time.monotonic() + seconds for name, seconds in every.items()}
        while not self.stopping.is_set():
            wait = min([t - time.monotonic() for t in due.values()], default=60.0)
            try:
                job = self.jobs.get(timeout=max(wait, 0.0))
            except queue.Empty:
                job = None
            if job is not None:
                with self.lock:
                    self.waiting.discard(job)
                if job[0]:
                    run_logged(self.app, job[0], *job[1])
            for name, at in due.items():
                if at <= time.monotonic() and not self.stopping.is_set():
                    run_logged(self.app, name)
                    due[name] = time.monotonic() + every[name]
