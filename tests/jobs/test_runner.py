"""Without a broker the app runs its jobs on one thread of its own, started with the app."""

from __future__ import annotations

import threading
import time

from telehealth.jobs import enqueue, runner, tasks
from tests.conftest import another_app


def test_without_a_broker_the_app_runs_periodic_and_queued_jobs_on_its_own_thread(
        tmp_path, monkeypatch):
    runs: list[tuple[str, tuple[object, ...]]] = []
    done = threading.Event()

    def job(name: str):
        def run(*args: object) -> None:
            runs.append((name, args))
            if len(runs) >= 3:
                done.set()
        return run

    monkeypatch.setitem(tasks.TASKS, "sweep", job("sweep"))
    monkeypatch.setitem(tasks.TASKS, "machine_translate", job("machine_translate"))
    app = another_app({"TESTING": False, "JOBS_BROKER_URL": None,
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'jobs.sqlite'}",
                       "SWEEPER_INTERVAL_SECONDS": 0.2, "OUTBOX_POLL_SECONDS": 0})
    worker = runner(app)
    try:
        assert worker.thread is not None and worker.thread.is_alive()  # started by create_app
        # No request starts anything: nothing hangs on before_request.
        assert not [f for f in app.before_request_funcs.get(None, [])
                    if "sweep" in f.__name__ or "job" in f.__name__]
        with app.app_context():
            enqueue("machine_translate", 1, 2, "fr")
            enqueue("machine_translate", 1, 2, "fr")
        assert done.wait(10)
        time.sleep(0.3)
        assert ("machine_translate", (1, 2, "fr")) in runs
        assert ("sweep", ()) in runs
    finally:
        worker.stop()
    assert worker.thread is None
