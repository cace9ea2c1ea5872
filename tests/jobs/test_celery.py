"""Acceptance: real Celery workers (two, plus beat) on the Redis broker against PostgreSQL
deliver the outbox and run the sweeper; each notification is delivered once and each consult
re-offered once although both workers run the same tasks at the same time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.audit.models import AuditEvent
from telehealth.consults.models import Urgency
from telehealth.extensions import db
from telehealth.jobs import make_celery, task_name
from telehealth.matching.models import Offer, OfferStatus
from telehealth.notifications.models import OutboxKind, OutboxMessage, OutboxStatus
from tests.conftest import TEST_DATABASE_URL, need_service
from tests.notifications.helpers import MailServer

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TELEHEALTH_TEST_REDIS_URL")


def _services() -> tuple[str, str]:
    if not TEST_DATABASE_URL or not TEST_DATABASE_URL.startswith("postgresql"):
        need_service("PostgreSQL", "set TELEHEALTH_TEST_DATABASE_URL to a PostgreSQL database")
    if not REDIS_URL:
        need_service("Redis", "TELEHEALTH_TEST_REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need_service("Redis", f"{REDIS_URL}: {exc}")
    return TEST_DATABASE_URL, REDIS_URL  # type: ignore[return-value]


class Workers:
    def __init__(self, celery: Any, mail: MailServer) -> None:
        self.celery = celery
        self.mail = mail

    def send(self, name: str, times: int = 1) -> None:
        for _ in range(times):
            self.celery.send_task(task_name(name))


@pytest.fixture()
def workers(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workers]:
    database_url, redis_url = _services()
    mail = MailServer().up()
    queue = f"telehealth-test-{uuid.uuid4().hex[:8]}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TELEHEALTH_")}
    env.update(TELEHEALTH_DATABASE_URL=database_url, TELEHEALTH_BROKER_URL=redis_url,
               TELEHEALTH_JOBS_QUEUE=queue, TELEHEALTH_INSTANCE_DIR=str(tmp_path),
               TELEHEALTH_SECRET_KEY=app.config["SECRET_KEY"],
               TELEHEALTH_MAIL_SERVER="127.0.0.1", TELEHEALTH_MAIL_PORT=str(mail.port),
               TELEHEALTH_SWEEPER_INTERVAL="2", TELEHEALTH_OUTBOX_POLL_SECONDS="2")
    celery_cmd = [sys.executable, "-m", "celery", "-A", "telehealth.jobs.celery_app"]
    commands = {f"worker{index}": celery_cmd + [
        "worker", "-P", "threads", "-c", "2", "-n", f"w{index}-{queue}@%h", "--without-gossip",
        "--without-mingle", "-l", "warning"] for index in (1, 2)}
    commands["beat"] = celery_cmd + ["beat", "-l", "warning"]
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in commands}  # noqa: SIM115
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=logs[name]) for name, command in commands.items()]
    monkeypatch.setitem(app.config, "JOBS_BROKER_URL", redis_url)
    monkeypatch.setitem(app.config, "JOBS_QUEUE", queue)
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")  # notify() writes e-mails
    monkeypatch.setitem(app.config, "MAIL_PORT", mail.port)
    celery = make_celery(app)
    monkeypatch.setitem(app.extensions, "celery", celery)
    try:
        deadline = time.monotonic() + 120
        while len(celery.control.ping(timeout=1) or []) < 2:
            for process in processes:
                assert process.poll() is None, [(tmp_path / f"{name}.log").read_text()
                                                 for name in commands]
            assert time.monotonic() < deadline, "the Celery workers did not start"
        yield Workers(celery, mail)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs.values():
            log.close()
        mail.down()
        celery.close()


def _wait_until_sent(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        if not db.session.scalar(select(func.count(OutboxMessage.id)).where(
                OutboxMessage.status != OutboxStatus.SENT)):
            return
        time.sleep(0.3)
    pytest.fail("the workers did not deliver the outbox")


def _emails() -> dict[tuple[str, str], int]:
    return {(m.recipient, m.subject): 1 for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.EMAIL))}


def test_two_celery_workers_deliver_each_notification_once_and_reoffer_each_consult_once(
        workers, world, make_user, make_consult):
    # Delivery: six emergencies, each offered to three cardiologists by e-mail and live.
    for _ in range(2):
        make_user(Role.SPECIALIST, languages=("en",))
    for index in range(6):
        make_consult(world["clinician"], urgency=Urgency.EMERGENCY, patient_ref=f"E-{index}")
        workers.send("deliver_outbox", 2)  # both workers at once, besides the commit's own
    _wait_until_sent()
    assert len(_emails()) == 18
    time.sleep(3)  # beat's periodic deliveries too: nothing may go twice
    assert workers.mail.received() == _emails()

    # The sweeper: five urgent consults, each offered to one of two neurologists; the offers
    # lapse, and the sweeps running on both workers offer each to the other one, once.
    neurologists = {make_user(Role.SPECIALIST, specialties=("neurology",)).id for _ in "ab"}
    consults = [make_consult(world["clinician"], specialty="neurology", urgency=Urgency.URGENT,
                             patient_ref=f"N-{index}") for index in range(5)]
    ids = [c.id for c in consults]
    db.session.execute(update(Offer).where(Offer.consult_id.in_(ids))
                       .values(expires_at=clock.now() - timedelta(minutes=1)))
    db.session.commit()
    workers.send("sweep", 4)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        db.session.rollback()
        if db.session.scalar(select(func.count(Offer.id)).where(
                Offer.consult_id.in_(ids), Offer.status == OfferStatus.PENDING)) == 5:
            break
        time.sleep(0.3)
    workers.send("sweep", 4)
    time.sleep(3)  # more sweeps, from beat and by hand: nothing changes
    _wait_until_sent()
    db.session.rollback()
    for consult_id in ids:
        offers = db.session.scalars(select(Offer).where(Offer.consult_id == consult_id)).all()
        assert sorted(o.status for o in offers) == [OfferStatus.EXPIRED, OfferStatus.PENDING]
        assert {o.specialist_id for o in offers} == neurologists
    created = Counter(db.session.scalars(select(AuditEvent.consult_id).where(
        AuditEvent.action == "offer.created", AuditEvent.consult_id.in_(ids))))
    assert created == {consult_id: 2 for consult_id in ids}
    assert len(_emails()) == 18 + 10
    assert workers.mail.received() == _emails()
