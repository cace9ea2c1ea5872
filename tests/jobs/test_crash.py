"""Acceptance: the app process is killed (SIGKILL) after a commit, before its mail went out;
started again, it delivers every pending notification exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.notifications.helpers import MailServer

ROOT = Path(__file__).resolve().parents[2]


def _child(phase: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.jobs.child", phase], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_process_delivers_every_pending_notification_once_after_restart(tmp_path):
    mail = MailServer().silent()  # the first delivery hangs: the kill comes mid-delivery
    database = tmp_path / "crash.sqlite"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TELEHEALTH_")}
    env.update(TELEHEALTH_INSTANCE_DIR=str(tmp_path), TELEHEALTH_SECRET_KEY="crash-test",
               TELEHEALTH_DATABASE_URL=f"sqlite:///{database}",
               TELEHEALTH_MAIL_SERVER="127.0.0.1", TELEHEALTH_MAIL_PORT=str(mail.port))
    engine = create_engine(f"sqlite:///{database}")
    try:
        first = _child("commit", env)
        assert first.stdout is not None
        line = first.stdout.readline()
        assert line.startswith("COMMITTED "), line + first.stderr.read()
        expected = {tuple(email) for email in json.loads(line.split(" ", 1)[1])}
        assert len(expected) >= 2

        def claimed() -> bool:
            with engine.connect() as conn:
                return bool(conn.execute(text(
                    "SELECT count(*) FROM outbox_messages WHERE kind = 'EMAIL' "
                    "AND attempts > 0")).scalar())

        _wait_for(claimed, 60, "the job thread to take the first e-mail")
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)  # reaps it and closes its pipes
        with engine.connect() as conn:
            states = conn.execute(text("SELECT status, attempts FROM outbox_messages "
                                       "WHERE kind = 'EMAIL' ORDER BY id")).all()
        assert [status for status, _attempts in states] == ["PENDING"] * len(expected)
        assert mail.messages == []

        mail.up()
        second = _child("deliver", env)
        out, err = second.communicate(timeout=180)
        assert "DRAINED" in out, err
        time.sleep(1)  # a second copy of anything would have arrived by now
        assert mail.received() == {email: 1 for email in expected}
        with engine.connect() as conn:
            attempts = conn.execute(text("SELECT attempts FROM outbox_messages "
                                         "WHERE kind = 'EMAIL' ORDER BY id")).scalars().all()
        assert attempts[0] == 2  # the one in hand when the process died went out once
    finally:
        engine.dispose()
        mail.down()
        for process in ("first", "second"):
            child = locals().get(process)
            if child is not None and child.poll() is None:
                child.kill()
                child.communicate()
