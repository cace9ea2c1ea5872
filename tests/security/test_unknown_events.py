"""One catch-all for Socket.IO events nobody handles (security.sessions.unknown_event_answer):
the only-sending namespaces and the call guard both use it."""

from __future__ import annotations

from typing import Any

import pytest

from telehealth.security import sessions
from telehealth.video import guard


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    sent: list[Any] = []
    monkeypatch.setattr(sessions, "emit", lambda *args: sent.append(args))
    monkeypatch.setattr(sessions, "disconnect", lambda: sent.append("disconnect"))
    return sent


@pytest.mark.parametrize(("alive", "expected"), [
    (True, [("nope", {"event": "x" * 64, "message": "not used"})]),
    (False, ["disconnect"]),  # the session ended elsewhere: its next event closes the socket
])
def test_an_unknown_event_is_answered_or_ends_a_dead_session(sent: list[Any], alive: bool,
                                                            expected: list[Any]) -> None:
    answer = sessions.unknown_event_answer("nope", lambda: "not used", alive=lambda: alive)
    answer("x" * 100, {"payload": 1})
    assert sent == expected


def test_a_guest_on_the_call_is_answered_without_a_signed_in_session(
        app: Any, sent: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "is_guest", lambda: True)
    monkeypatch.setattr(guard, "socket_session_alive", lambda: False)
    with app.test_request_context():
        guard._answer_unknown("made_up")
    assert sent == [("call_error", {"event": "made_up",
                                    "message": "The message is not understood."})]
