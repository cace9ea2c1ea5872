"""A long call is activity: the call page keeps its sessions (page and socket) from idling out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from telehealth import clock
from tests.video.conftest import SignalClient

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_the_page_keepalive_resets_the_idle_clock(client: FlaskClient, auth: Any,
                                                  world: dict[str, Any],
                                                  call_consult: Any) -> None:
    clock.freeze(T0)
    auth.login(world["clinician"])
    page = client.get(f"/consults/{call_consult.id}/call").text
    assert 'data-keepalive-url="/api/session/alive"' in page
    assert 'data-keepalive-seconds="300"' in page
    for minutes in (25, 50, 75):  # every 25 minutes, with a 30-minute time-out
        clock.freeze(T0 + timedelta(minutes=minutes))
        response = client.get("/api/session/alive")
        assert response.status_code == 204 and response.headers["Cache-Control"] == "no-store"
    clock.freeze(T0 + timedelta(minutes=100))
    assert client.get("/").status_code == 200  # still signed in after 100 minutes
    clock.freeze(T0 + timedelta(minutes=131))
    assert client.get("/api/session/alive").status_code == 401  # idle: signed out


def test_socket_keepalive_keeps_a_long_call_open(
        call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    clock.freeze(T0)
    keeping, idle = signal_client(world["clinician"]), signal_client(world["specialist"])
    event = {"consult_id": call_consult.id}
    for signal in (keeping, idle):
        signal.emit("join", {**event, "profile": "low"})
        signal.wait("offer")
    for minutes in (25, 50):
        clock.freeze(T0 + timedelta(minutes=minutes))
        # Wait for the handler (an acknowledgement): the clock moves on for the server too.
        keeping.sio.call("keepalive", event, namespace="/call", timeout=10)
    clock.freeze(T0 + timedelta(minutes=55))
    keeping.emit("chat", {**event, "body": "Still here after 55 minutes"})
    assert keeping.wait("chat")["body"] == "Still here after 55 minutes"
    assert keeping.drain("call_error") == []
    # The other side sent nothing for 55 minutes: its socket's session has idled out.
    idle.emit("chat", {**event, "body": "Hello?"})
    assert "session has ended" in idle.wait("call_error")["message"]
