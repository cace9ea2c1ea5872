"""Every /call event refuses people who are not in that consult's call."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
import socketio

from telehealth import clock
from telehealth.errors import InvalidInput, PermissionDenied
from telehealth.extensions import db
from telehealth.matching.services import accept_consult
from telehealth.video import hub as video_hub
from telehealth.video import services
from telehealth.video.models import VideoInvite
from tests.conftest import PASSWORD
from tests.video.conftest import SignalClient, login_cookie

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def every_event(consult_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("join", {"consult_id": consult_id, "profile": "low"}),
        ("answer", {"consult_id": consult_id, "sdp": SDP}),
        ("offer", {"consult_id": consult_id, "sdp": SDP}),
        ("candidate", {"consult_id": consult_id, "candidate":
                       "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
                       "sdpMid": "0", "sdpMLineIndex": 0}),
        ("media", {"consult_id": consult_id, "video": False, "receive_video": False}),
        ("chat", {"consult_id": consult_id, "body": "hello"}),
        ("leave", {"consult_id": consult_id}),
    ]


def assert_all_refused(client: SignalClient, consult_id: int, engine_calls: list[str]) -> None:
    for event, payload in every_event(consult_id):
        client.emit(event, payload)
        error = client.wait("call_error")
        assert error["event"] == event and error["message"]
    assert client.drain("offer") == [] and client.drain("chat") == []
    assert engine_calls == []


def test_no_sign_in_cannot_even_connect(live_server: str,
                                        signal_client: Callable[..., SignalClient]) -> None:
    client = signal_client(None, connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()


@pytest.mark.parametrize("who", ["other_clinician", "other_specialist", "coordinator", "admin"])
def test_outsiders_are_refused_every_event(
        who: str, call_consult: Any, world: dict[str, Any], engine_calls: list[str],
        signal_client: Callable[..., SignalClient]) -> None:
    assert_all_refused(signal_client(world[who]), call_consult.id, engine_calls)


def test_member_of_one_consult_is_refused_on_another(
        call_consult: Any, world: dict[str, Any], make_user: Callable[..., Any],
        make_consult: Callable[..., Any], engine_calls: list[str],
        signal_client: Callable[..., SignalClient]) -> None:
    other_consult = make_consult(world["other_clinician"])
    accept_consult(other_consult, world["specialist"])
    db.session.commit()
    # The clinician is in call_consult's call, not in the other clinic's consult.
    assert_all_refused(signal_client(world["clinician"]), other_consult.id, engine_calls)
    # Unknown and malformed consult ids are refused the same way.
    assert_all_refused(signal_client(world["clinician"]), 99_999, engine_calls)


def test_no_call_before_a_specialist_takes_the_consult(
        world: dict[str, Any], make_consult: Callable[..., Any], engine_calls: list[str],
        signal_client: Callable[..., SignalClient]) -> None:
    consult = make_consult(world["clinician"])
    assert_all_refused(signal_client(world["clinician"]), consult.id, engine_calls)


def _guest_cookie(live_server: str, token: str) -> str:
    http = requests.Session()
    response = http.get(f"{live_server}/call/invite/{token}", allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def test_invited_guest_joins_once_and_not_after_the_call(
        call_consult: Any, world: dict[str, Any], live_server: str, engine_calls: list[str],
        signal_client: Callable[..., SignalClient]) -> None:
    invite, token = services.create_invite(call_consult, world["clinician"], "Interpreter")
    db.session.commit()
    cookie = _guest_cookie(live_server, token)
    # One-time: the same link a second time is refused.
    again = requests.get(f"{live_server}/call/invite/{token}", allow_redirects=False)
    assert again.status_code == 403

    guest = signal_client(cookie=cookie)
    guest.emit("join", {"consult_id": call_consult.id})
    assert guest.wait("offer")["self"] == f"g{invite.id}"
    assert engine_calls == ["join"]
    guest.emit("leave", {"consult_id": call_consult.id})

    # The call has ended with them: the invite has expired with it.
    deadline = time.monotonic() + 5
    while True:
        db.session.expire_all()
        if db.session.get(VideoInvite, invite.id).expires_at <= clock.now():
            break
        assert time.monotonic() < deadline, "the invite did not expire with the call"
        time.sleep(0.05)
    engine_calls.clear()
    late = signal_client(cookie=cookie)
    assert_all_refused(late, call_consult.id, engine_calls)


def test_guest_invite_does_not_open_another_consult(
        call_consult: Any, world: dict[str, Any], live_server: str,
        make_consult: Callable[..., Any], engine_calls: list[str],
        signal_client: Callable[..., SignalClient]) -> None:
    other = make_consult(world["clinician"], patient_ref="P-2")
    accept_consult(other, world["specialist"])
    _invite, token = services.create_invite(call_consult, world["clinician"], "Guest")
    db.session.commit()
    guest = signal_client(cookie=_guest_cookie(live_server, token))
    assert_all_refused(guest, other.id, engine_calls)


def _signed_in_guest_cookie(live_server: str, user: Any, token: str) -> str:
    """Signed in as `user`, then the invitation link opened in the same browser."""
    http = requests.Session()
    response = http.post(f"{live_server}/login",
                         data={"email": user.email, "password": PASSWORD},
                         allow_redirects=False)
    assert response.status_code in (302, 303), response.text[:300]
    response = http.get(f"{live_server}/call/invite/{token}", allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def test_signed_in_outsider_joins_with_an_invite_for_that_call_only(
        call_consult: Any, world: dict[str, Any], live_server: str,
        make_consult: Callable[..., Any], engine_calls: list[str],
        signal_client: Callable[..., SignalClient]) -> None:
    """A coordinator, signed in, opens an invitation link: they join as that guest."""
    other = make_consult(world["clinician"], patient_ref="P-2")
    accept_consult(other, world["specialist"])
    invite, token = services.create_invite(call_consult, world["clinician"], "Coordinator")
    db.session.commit()
    cookie = _signed_in_guest_cookie(live_server, world["coordinator"], token)
    page = requests.get(f"{live_server}/consults/{call_consult.id}/call",
                        headers={"Cookie": cookie}, allow_redirects=False)
    assert page.status_code == 200
    # The invite opens this consult's call, not the other one.
    assert_all_refused(signal_client(cookie=cookie), other.id, engine_calls)
    guest = signal_client(cookie=cookie)
    guest.emit("join", {"consult_id": call_consult.id, "profile": "low"})
    assert guest.wait("offer")["self"] == f"g{invite.id}"
    assert engine_calls == ["join"]
    guest.emit("leave", {"consult_id": call_consult.id})
    guest.wait("left")


def test_participant_with_an_invite_stays_themselves(
        call_consult: Any, world: dict[str, Any], live_server: str,
        signal_client: Callable[..., SignalClient]) -> None:
    """A clinician of the case who also opened an invite joins under their own name."""
    _invite, token = services.create_invite(call_consult, world["specialist"], "Colleague")
    db.session.commit()
    cookie = _signed_in_guest_cookie(live_server, world["clinician"], token)
    client = signal_client(cookie=cookie)
    client.emit("join", {"consult_id": call_consult.id, "profile": "low"})
    assert client.wait("offer")["self"] == f"u{world['clinician'].id}"
    client.emit("leave", {"consult_id": call_consult.id})
    client.wait("left")


def test_expired_invite_link_is_refused(call_consult: Any, world: dict[str, Any],
                                        live_server: str) -> None:
    invite, token = services.create_invite(call_consult, world["clinician"], "Late guest")
    invite.expires_at = clock.now() - timedelta(minutes=1)
    db.session.commit()
    response = requests.get(f"{live_server}/call/invite/{token}", allow_redirects=False)
    assert response.status_code == 403


def said(response: Any) -> str:
    """What a page tells its reader (its main part), or a JSON answer whole."""
    text = response.text
    return text[text.find("<main>"):text.find("</main>")] if "<main>" in text else text


def test_call_page_for_members_only(call_consult: Any, world: dict[str, Any],
                                    live_server: str) -> None:
    page = f"{live_server}/consults/{call_consult.id}/call"
    made_up = f"{live_server}/consults/{call_consult.id + 1000}/call"
    # A coordinator reads the consult (403: not in its call); another clinic may not even know
    # it exists: the very answer a made-up id gets, as for the call's `where`.
    for who, status in (("clinician", 200), ("specialist", 200), ("other_clinician", 404),
                        ("coordinator", 403)):
        http = requests.Session()
        http.headers["Cookie"] = login_cookie(live_server, world[who])
        assert http.get(page, allow_redirects=False).status_code == status, who
        if who == "other_clinician":
            for path in ("", "/where"):
                real = http.get(page + path, allow_redirects=False)
                fake = http.get(made_up + path, allow_redirects=False)
                assert real.status_code == fake.status_code == 404, path
                assert said(real) == said(fake), path
    assert requests.get(page, allow_redirects=False).status_code == 302  # to the sign-in page


def test_consult_page_shows_a_way_into_the_call_to_participants_only(
        call_consult: Any, world: dict[str, Any], auth: Any, client: Any,
        make_user: Callable[..., Any]) -> None:
    """No time agreed: participants get "Call now" (the join window: tests/video/test_views)."""
    auth.login(world["specialist"])
    page = client.get(f"/consults/{call_consult.id}").data
    assert b'id="call-now"' in page and b'id="join-call"' not in page
    auth.logout()
    auth.login(world["coordinator"])
    page = client.get(f"/consults/{call_consult.id}").data
    assert b'id="call-now"' not in page and b'id="join-call"' not in page


def test_invites_need_a_name_and_a_member(app: Any, world: dict[str, Any],
                                          call_consult: Any) -> None:
    with app.test_request_context():
        with pytest.raises(InvalidInput, match="name"):
            services.create_invite(call_consult, world["clinician"], "  ")
        # Coordinators are deliberately not call members; they can be invited as guests.
        with pytest.raises(PermissionDenied, match="participants"):
            services.create_invite(call_consult, world["coordinator"], "Someone")


def test_signing_out_ends_the_call_socket(app: Any, live_server: str, call_consult: Any,
                                          world: dict[str, Any], engine_calls: list[str],
                                          signal_client: Callable[..., SignalClient]) -> None:
    """A copied cookie keeps no call alive once its owner has signed out."""
    cookie = login_cookie(live_server, world["clinician"])
    client = signal_client(cookie=cookie)
    assert client.connected
    client.emit("join", {"consult_id": call_consult.id, "profile": "low"})
    client.wait("offer")
    hub = video_hub.get_hub(app)
    assert hub.members.get(call_consult.id)
    engine_calls.clear()
    # Signing out (from the page, with the same cookie) rotates the session token.
    http = requests.Session()
    response = http.post(f"{live_server}/logout", headers={"Cookie": cookie},
                         allow_redirects=False)
    assert response.status_code in (302, 303)
    deadline = time.monotonic() + 10
    while client.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.connected
    # Out of the call at once, not after the reconnect grace period: no media keeps flowing.
    deadline = time.monotonic() + 5
    while hub.members.get(call_consult.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not hub.members.get(call_consult.id)
    assert engine_calls == ["leave"]
