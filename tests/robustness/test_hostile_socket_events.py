"""Malformed Socket.IO payloads on every namespace, from every demo role: an error event (or
nothing, on a receive-only channel), never an unhandled exception."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from telehealth.cli import DEMO_PASSWORD
from telehealth.extensions import socketio
from tests.robustness.test_hostile_inputs import crashes
from tests.weight.demo import DEMO_ROLES, seed_world

HUGE = 99999999999999999999
PAYLOADS: tuple[Any, ...] = (
    None, "x", 123, 1.5e308, True, [], [1, 2, 3],
    {"consult_id": HUGE}, {"consult_id": "abc"}, {"consult_id": -1},
    {"consult_id": 1, "sdp": 5, "body": {"a": 1}, "candidate": [], "participant_id": None,
     "profile": "ultra", "audio": "loud", "sdpMid": {}, "sdpMLineIndex": "x"},
    {"consult_id": 1, "body": "x" * 70_000},
    {"consult_id": 1, "body": "\x00\x01 nul"},
    {"a": {"b": {"c": {"d": [[[[{}]]]]}}}},
)


def namespaces_and_events() -> dict[str, set[str]]:
    """Every namespace the app serves, with each event it handles and one it does not."""
    found: dict[str, set[str]] = {}
    for namespace, handlers in socketio.server.handlers.items():
        found.setdefault(namespace, set()).update(handlers)
    for namespace, handler in socketio.server.namespace_handlers.items():
        found.setdefault(namespace, set()).update(
            name[3:] for name in dir(handler) if name.startswith("on_"))
    for events in found.values():
        events.difference_update({"connect", "disconnect", "*"})
        events.add("no_such_event")
    return found


@pytest.mark.parametrize("who", list(DEMO_ROLES))
def test_malformed_socket_payloads_never_raise(app, who, caplog):
    seed_world(photo_size=(320, 240))
    client = app.test_client()
    client.post("/login", data={"email": DEMO_ROLES[who], "password": DEMO_PASSWORD})
    targets = namespaces_and_events()
    assert {"/notifications", "/call", "/situation"} <= set(targets)
    raised = []
    with caplog.at_level(logging.INFO):
        for namespace, events in sorted(targets.items()):
            sio = socketio.test_client(app, namespace=namespace, flask_test_client=client)
            for event in sorted(events):
                for payload in PAYLOADS:
                    if not sio.is_connected(namespace):  # refused, or dropped for abuse
                        sio = socketio.test_client(app, namespace=namespace,
                                                   flask_test_client=client)
                        if not sio.is_connected(namespace):
                            break  # this role may not open the namespace at all
                    try:
                        sio.emit(event, payload, namespace=namespace)
                    except Exception as exc:  # noqa: BLE001 - the finding itself
                        raised.append(f"{namespace} {event} {payload!r:.60}: {exc!r}")
                    if not sio.is_connected(namespace):
                        continue  # dropped: too large, or too many messages
                    received = sio.get_received(namespace)
                    if event == "no_such_event":
                        names = {packet["name"] for packet in received}
                        # The call and conference pages hear refusals as "call_error".
                        answer = "call_error" if namespace in ("/call", "/conference") \
                            else "error"
                        assert answer in names, (namespace, payload, received)
                    if namespace == "/call" and event in ("join", "chat"):
                        # Acted on (an offer, the line) or refused with the reason: an answer.
                        assert received, (namespace, event, payload)
            if sio.is_connected(namespace):
                sio.disconnect(namespace=namespace)
    assert raised == [] and not crashes(caplog), "\n".join([*raised, *crashes(caplog)])
