"""The app in a child process, for the crash test: `python -m tests.jobs.child commit|deliver`.

Configured through the environment (database, mail server) like a deployment. `commit` builds
the demo world, submits an emergency and commits it, prints `COMMITTED` and the e-mails it
wrote, then waits to be killed while its job thread delivers. `deliver` starts the app again
and exits once the outbox is empty, printing `DRAINED`.
"""

from __future__ import annotations

import json
import sys
import time

from sqlalchemy import select

from telehealth import create_app
from telehealth.extensions import db

CONFIG = {"JOBS_EAGER": False, "OUTBOX_POLL_SECONDS": 0.5, "SWEEPER_INTERVAL_SECONDS": 0,
          "OUTBOX_LEASE_SECONDS": 3, "OUTBOX_RETRY_BASE_SECONDS": 1,
          "OUTBOX_RETRY_MAX_SECONDS": 2, "OUTBOX_MAX_ATTEMPTS": 1000, "MAIL_TIMEOUT": 60}


def commit() -> None:
    from flask_migrate import upgrade

    from telehealth.accounts.models import Specialty, User
    from telehealth.cli import seed_demo
    from telehealth.consults.models import ConsultMode, Sex, Urgency
    from telehealth.consults.services import ConsultInput, create_consult
    from telehealth.notifications.models import OutboxKind, OutboxMessage

    upgrade()
    seed_demo()
    db.session.commit()
    clinician = db.session.scalar(select(User).where(User.email == "marie.kabila@example.org"))
    cardiology = db.session.scalar(select(Specialty).where(Specialty.code == "cardiology"))
    assert clinician is not None and cardiology is not None
    create_consult(clinician, ConsultInput(
        patient_ref="P-1", patient_age_years=60, patient_age_band=None, patient_sex=Sex.MALE,
        presenting_problem="Crushing chest pain for an hour.", history="",
        question="Thrombolyse?", specialty=cardiology, urgency=Urgency.EMERGENCY,
        mode=ConsultMode.WRITTEN, languages=["fr", "en"]), [], submit=True)
    db.session.commit()
    emails = [[m.recipient, m.subject] for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.EMAIL))]
    print("COMMITTED " + json.dumps(emails), flush=True)
    time.sleep(600)


def deliver() -> None:
    from telehealth.notifications.models import OutboxMessage, OutboxStatus

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        db.session.rollback()
        if db.session.scalar(select(OutboxMessage.id).where(
                OutboxMessage.status != OutboxStatus.SENT).limit(1)) is None:
            print("DRAINED", flush=True)
            return
        time.sleep(0.2)
    sys.exit("the outbox was not drained")


if __name__ == "__main__":
    app = create_app(CONFIG)
    with app.app_context():
        {"commit": commit, "deliver": deliver}[sys.argv[1]]()
