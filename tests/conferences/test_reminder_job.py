"""Conference reminders are a job: the periodic runner (or Celery beat) sends them, and what
the job wrote is committed, so a session is reminded once however often the job runs."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from telehealth.conferences.models import ConferenceSession
from telehealth.extensions import db
from telehealth.jobs import tasks
from telehealth.jobs.runner import periodic_jobs
from telehealth.notifications.models import OutboxMessage


def test_the_reminder_job_commits_and_reminds_each_session_once(
        app: Flask, conference: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = conference["session"].id
    db.session.commit()
    assert tasks.conference_reminders() == 3
    db.session.rollback()  # what the job wrote is committed, not merely flushed
    assert db.session.get(ConferenceSession, session_id).reminded_at is not None
    assert tasks.conference_reminders() == 0
    sent = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.event == "conference_reminder"))
    assert sent and sent >= 3


def test_reminders_run_periodically_unless_left_to_cron(app: Flask) -> None:
    assert periodic_jobs(app)["conference_reminders"] == app.config["CONFERENCE_REMINDER_SECONDS"]
    app.config["CONFERENCE_REMINDER_SECONDS"] = 0
    try:
        assert "conference_reminders" not in periodic_jobs(app)
    finally:
        app.config["CONFERENCE_REMINDER_SECONDS"] = 900
