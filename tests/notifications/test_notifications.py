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


# ---------------------------------------------------------------- call times


@pytest.fixture()
def call_world(world, make_consult, make_user):
    """A consult the specialist (English, New York) has taken from a French clinician in
    Kinshasa, with a colleague at the same clinic; the clock at 25 Nov 2026, noon UTC."""
    from datetime import UTC, datetime

    from telehealth import clock
    from telehealth.accounts.models import Role
    from tests.conftest import take_consult

    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    clinician, specialist = world["clinician"], world["specialist"]
    clinician.locale, clinician.timezone = "fr", "Africa/Kinshasa"  # UTC+1
    specialist.locale, specialist.timezone = "en", "America/New_York"  # UTC-5 in December
    colleague = make_user(Role.CLINICIAN, clinic=world["clinic"])
    consult = make_consult(clinician)
    take_consult(consult, specialist)
    db.session.commit()
    return world | {"consult": consult, "colleague": colleague}


def _mail_to(inbox, user):
    """(subject, body) of each e-mail to this user, decoded (French is not plain ASCII)."""
    from email.header import decode_header, make_header

    return [(str(make_header(decode_header(message["Subject"]))),
             message.get_payload(decode=True).decode(message.get_content_charset() or "ascii"))
            for recipients, message in inbox.messages if user.email in recipients]


def _french(text, **values):
    """The message as the French catalog has it (English until the lead merges catalogs)."""
    from flask_babel import force_locale
    from flask_babel import gettext as _

    with force_locale("fr"):
        return _(text, **values)


def test_a_proposed_time_is_emailed_to_the_other_side_in_their_language_and_zone(
        smtp_server, call_world, client, auth):
    clinician, specialist = call_world["clinician"], call_world["specialist"]
    consult = call_world["consult"]
    smtp_server.messages.clear()  # the offer and the acceptance of the consult
    auth.login(specialist)
    # 03:00 in New York is 08:00 UTC and 09:00 in Kinshasa.
    response = client.post(f"/consults/{consult.id}/call/proposals",
                           data={"starts_at": "2026-12-01T03:00"})
    assert response.status_code == 303
    [(subject, body)] = _mail_to(smtp_server, clinician)
    assert subject == _french("New call time proposed for consult %(ref)s",
                              ref=consult.reference)
    assert "mardi 1 décembre 2026, 09:00 (Kinshasa)" in body
    assert consult.reference in body and specialist.name in body
    assert f"/consults/{consult.id}#call" in body
    assert consult.patient_ref not in body and consult.presenting_problem not in body
    # Every clinician of the clinic may take the call; the proposer gets nothing.
    assert len(_mail_to(smtp_server, call_world["colleague"])) == 1
    assert _mail_to(smtp_server, specialist) == []
    for outsider in ("other_clinician", "other_specialist", "coordinator", "admin"):
        assert _mail_to(smtp_server, call_world[outsider]) == []


def test_the_proposer_hears_the_time_is_agreed_and_the_other_side_that_it_is_withdrawn(
        smtp_server, call_world, client, auth):
    clinician, specialist = call_world["clinician"], call_world["specialist"]
    consult = call_world["consult"]
    smtp_server.messages.clear()
    auth.login(clinician)
    # 10:00 in Kinshasa is 09:00 UTC and 04:00 in New York.
    assert client.post(f"/consults/{consult.id}/call/proposals",
                       data={"starts_at": "2026-12-01T10:00"}).status_code == 303
    [(subject, body)] = _mail_to(smtp_server, specialist)
    assert subject == f"New call time proposed for consult {consult.reference}"
    assert "Tuesday, December 1, 2026, 4:00\u202fAM (New York)" in body
    assert _mail_to(smtp_server, clinician) == []
    from telehealth.video.models import CallProposal

    proposal = db.session.query(CallProposal).one()
    auth.logout()
    smtp_server.messages.clear()

    auth.login(specialist)
    assert client.post(f"/consults/{consult.id}/call/proposals/{proposal.id}/accept"
                       ).status_code == 303
    [(subject, body)] = _mail_to(smtp_server, clinician)
    assert subject == _french("Call time agreed for consult %(ref)s", ref=consult.reference)
    assert "mardi 1 décembre 2026, 10:00 (Kinshasa)" in body
    assert _mail_to(smtp_server, specialist) == []  # the one who accepted
    auth.logout()
    smtp_server.messages.clear()

    auth.login(clinician)
    assert client.post(f"/consults/{consult.id}/call/proposals/{proposal.id}/withdraw"
                       ).status_code == 303
    [(subject, body)] = _mail_to(smtp_server, specialist)
    assert subject == f"Proposed call time withdrawn for consult {consult.reference}"
    assert "Tuesday, December 1, 2026, 4:00\u202fAM (New York)" in body
    assert clinician.name in body and f"/consults/{consult.id}#call" in body
    assert _mail_to(smtp_server, clinician) == []


def test_call_times_reach_the_other_rooms_live_in_each_readers_zone(app, call_world):
    from datetime import UTC, datetime

    from telehealth.video import services as video

    clinician, specialist = call_world["clinician"], call_world["specialist"]
    consult = call_world["consult"]
    clinician_io, specialist_io = _socket_for(app, clinician), _socket_for(app, specialist)
    outsider_io = _socket_for(app, call_world["other_clinician"])

    proposal = video.propose_time(consult, specialist, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    db.session.commit()
    [proposed] = _events(clinician_io, "call.proposed")
    assert proposed == {
        "consult_id": consult.id, "reference": consult.reference,
        "specialty": consult.specialty.name, "proposal_id": proposal.id,
        "status": "proposed", "by": specialist.name, "url": f"/consults/{consult.id}#call",
        "time": "mardi 1 décembre 2026, 09:00 (Kinshasa)"}
    assert _events(specialist_io, "call.proposed") == []  # not to the proposer
    assert _events(outsider_io, "call.proposed") == []

    video.set_proposal_status(proposal, consult, clinician, "accept")
    db.session.commit()
    [agreed] = _events(specialist_io, "call.agreed")
    assert agreed["time"] == "Tuesday, December 1, 2026, 3:00\u202fAM (New York)"
    assert agreed["by"] == clinician.name
    assert _events(clinician_io, "call.agreed") == []

    video.set_proposal_status(proposal, consult, specialist, "withdraw")
    db.session.commit()
    [withdrawn] = _events(clinician_io, "call.withdrawn")
    assert withdrawn["proposal_id"] == proposal.id and withdrawn["status"] == "withdrawn"
    assert _events(specialist_io, "call.withdrawn") == []
    assert _events(outsider_io, "call.agreed") + _events(outsider_io, "call.withdrawn") == []


def test_nothing_is_sent_for_a_rolled_back_call_time(app, smtp_server, call_world):
    from datetime import UTC, datetime

    from telehealth.video import services as video

    clinician_io = _socket_for(app, call_world["clinician"])
    smtp_server.messages.clear()
    video.propose_time(call_world["consult"], call_world["specialist"],
                       datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    db.session.rollback()
    db.session.commit()  # a later commit must not deliver what was rolled back
    assert _events(clinician_io, "call.proposed") == []
    assert smtp_server.messages == []


def test_an_inactive_clinician_is_not_told(smtp_server, call_world):
    from datetime import UTC, datetime

    from telehealth.video import services as video

    call_world["colleague"].active = False
    db.session.commit()
    smtp_server.messages.clear()
    video.propose_time(call_world["consult"], call_world["specialist"],
                       datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    db.session.commit()
    assert [r for r, _m in smtp_server.messages] == [[call_world["clinician"].email]]
