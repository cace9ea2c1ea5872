"""Real-time events (Flask-SocketIO test client) and e-mail (a real aiosmtpd server)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from flask import g

from telehealth.consults.models import Urgency
from telehealth.extensions import db, socketio
from telehealth.matching import services
from telehealth.notes.services import add_note
from telehealth.notifications.services import NAMESPACE
from tests.conftest import Auth


def _socket_for(app, user):
    client = app.test_client()
    Auth(client).login(user)
    # The test's app context (and its g) is reused by the socket test client: drop the
    # signed-in user Flask-Login cached there, or the next connect would see it too.
    g.pop("_login_user", None)
    sio = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client)
    g.pop("_login_user", None)
    return sio


def _events(sio, name):
    return [event["args"][0] for event in sio.get_received(NAMESPACE) if event["name"] == name]


def test_anonymous_socket_is_refused(app):
    sio = socketio.test_client(app, namespace=NAMESPACE)
    assert not sio.is_connected(NAMESPACE)


def test_offer_acceptance_note_and_escalation_reach_the_right_rooms(app, world, make_consult):
    specialist, other = world["specialist"], world["other_specialist"]
    clinician, coordinator = world["clinician"], world["coordinator"]
    specialist_io, other_io = _socket_for(app, specialist), _socket_for(app, other)
    clinician_io, coordinator_io = _socket_for(app, clinician), _socket_for(app, coordinator)
    assert specialist_io.is_connected(NAMESPACE)

    consult = make_consult(clinician)
    [offer] = _events(specialist_io, "offer.new")
    assert offer["reference"] == consult.reference and offer["url"] == f"/consults/{consult.id}"
    assert _events(other_io, "offer.new") == []  # a dermatologist's room hears nothing

    services.accept_consult(consult, specialist)
    db.session.commit()
    [accepted] = _events(clinician_io, "consult.accepted")
    assert accepted["specialist"] == specialist.name

    add_note(consult, specialist, "Please send an ECG.")
    db.session.commit()
    assert [n["author"] for n in _events(clinician_io, "note.new")] == [specialist.name]
    assert _events(specialist_io, "note.new") == []  # not to the author

    unmatched = make_consult(clinician, specialty="neurology", urgency=Urgency.ROUTINE)
    [escalated] = _events(coordinator_io, "consult.escalated")
    assert escalated["consult_id"] == unmatched.id


def test_a_reoffer_reaches_the_specialist_with_its_deadline_and_clears_the_coordinator(
        app, world, make_consult, make_user):
    from datetime import UTC, datetime, timedelta

    from telehealth import clock
    from telehealth.accounts.models import Role
    from telehealth.matching.sweeper import sweep_once
    from telehealth.roster.models import ProfileStatus
    from telehealth.roster.services import get_profile, set_status

    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    coordinator = world["coordinator"]
    neurologist = make_user(Role.SPECIALIST, specialties=("neurology",), timezone="Asia/Tokyo")
    set_status(get_profile(neurologist), ProfileStatus.SUSPENDED, coordinator)
    db.session.commit()
    neurologist_io, coordinator_io = _socket_for(app, neurologist), _socket_for(app, coordinator)
    consult = make_consult(world["clinician"], specialty="neurology")
    assert [e["consult_id"] for e in _events(coordinator_io, "consult.escalated")] == [consult.id]

    set_status(get_profile(neurologist), ProfileStatus.ACTIVE, coordinator)
    db.session.commit()
    [offer] = _events(neurologist_io, "offer.new")
    assert offer["consult_id"] == consult.id
    assert offer["deadline"] == "answer by 11:00\u202fPM"  # 14:00 UTC in Tokyo
    [reoffered] = _events(coordinator_io, "consult.reoffered")
    assert reoffered["consult_id"] == consult.id
    clock.freeze(clock.now() + timedelta(minutes=1))
    assert sweep_once().reoffered == 0
    assert _events(coordinator_io, "consult.reoffered") == []


def test_nothing_is_sent_for_a_rolled_back_change(app, world, make_consult):
    specialist_io = _socket_for(app, world["specialist"])
    consult = make_consult(world["clinician"], submit=False)
    from telehealth.consults.services import submit_consult

    submit_consult(consult, world["clinician"])
    db.session.rollback()
    assert _events(specialist_io, "offer.new") == []


class _Inbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.received = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        self.received.set()
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def smtp_server(app) -> Iterator[_Inbox]:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    try:
        yield inbox
    finally:
        app.config.update(MAIL_SERVER="")
        controller.stop()


def test_offer_and_escalation_are_emailed(smtp_server, world, make_consult, make_user):
    consult = make_consult(world["clinician"])
    assert smtp_server.received.wait(5)
    recipients, message = smtp_server.messages[0]
    assert recipients == [world["specialist"].email]
    assert message["Subject"] == f"New consult offered to you: {consult.reference}"
    assert f"/consults/{consult.id}" in message.get_payload()

    smtp_server.messages.clear()
    make_consult(world["clinician"], specialty="neurology")
    coordinators = {world["coordinator"].email, world["admin"].email}
    escalations = [r for r, m in smtp_server.messages
                   if m["Subject"].endswith("needs a specialist")]
    assert {email for r in escalations for email in r} == coordinators


def test_a_dead_mail_server_does_not_break_the_request(app, world, client, auth):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=_free_port(), MAIL_TIMEOUT=2)
    try:
        auth.login(world["clinician"])
        response = client.post("/consults/new", data={
            "patient_ref": "X", "patient_age_years": "3", "patient_sex": "male",
            "presenting_problem": "Cough", "question": "?",
            "specialty": str(world["specialist"].specialties[0].id), "urgency": "urgent",
            "mode": "written", "languages": ["en"], "submit": "Send"})
    finally:
        app.config.update(MAIL_SERVER="")
    assert response.status_code == 302
