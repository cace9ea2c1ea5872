"""Bad signaling input gets an error event; floods and huge messages end the connection;
other calls go on unharmed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from telehealth.extensions import db
from telehealth.matching.services import accept_consult
from tests.video.conftest import SignalClient
from tests.video.peers import CallPeer


def refused(client: SignalClient, event: str, payload: Any) -> str:
    client.emit(event, payload)
    error = client.wait("call_error")
    assert error["event"] == event
    return str(error["message"])


def wait_disconnected(client: SignalClient, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while client.connected:
        assert time.monotonic() < deadline, "the server kept the connection"
        time.sleep(0.05)


def test_bad_input_is_refused_while_another_call_goes_on(
        call_consult: Any, world: dict[str, Any], make_consult: Callable[..., Any],
        signal_client: Callable[..., SignalClient]) -> None:
    # A healthy call on another consult, with media flowing throughout.
    other = make_consult(world["clinician"], patient_ref="P-9")
    accept_consult(other, world["specialist"])
    db.session.commit()
    healthy = [signal_client(world["clinician"]), signal_client(world["specialist"])]
    sender = signal_client(world["clinician"])

    async def scenario() -> None:
        peers = [CallPeer(healthy[0], "red"), CallPeer(healthy[1], "blue")]
        try:
            for peer in peers:
                await peer.join(other.id)
            layout = await healthy[1].await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            mid = layout["peers"][0]["video_mid"]

            async def frames() -> int:
                deadline = time.monotonic() + 10
                while mid not in peers[1].received:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                return peers[1].received[mid].frames

            before = await frames()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, misbehave, sender, call_consult.id)
            await asyncio.sleep(1.5)
            # The other call kept flowing while the sender misbehaved and was cut off.
            assert await frames() > before + 10
        finally:
            for peer in peers:
                await peer.close()

    asyncio.run(scenario())


def misbehave(client: SignalClient, consult_id: int) -> None:
    """Every kind of bad input, in turn, from a member of the consult's call."""
    # An answer (or candidate, chat, media) for a call this socket has not joined.
    assert "not joined" in refused(client, "answer", {"consult_id": consult_id, "sdp": "v=0"})
    assert "not joined" in refused(client, "offer", {"consult_id": consult_id, "sdp": "v=0"})
    assert "not joined" in refused(client, "candidate", {"consult_id": consult_id,
                                                         "candidate": "candidate:x"})
    assert "not joined" in refused(client, "chat", {"consult_id": consult_id, "body": "hi"})
    # Not an object, missing or wrong-typed ids, unknown profile.
    assert refused(client, "join", "consult 1")
    assert refused(client, "join", {"consult_id": "1"})
    assert refused(client, "join", {"consult_id": consult_id, "profile": "ultra"})

    client.emit("join", {"consult_id": consult_id})
    client.wait("offer")
    # Malformed SDP, in two flavours.
    assert "SDP" in refused(client, "answer", {"consult_id": consult_id, "sdp": "hello"})
    assert "SDP" in refused(client, "answer", {"consult_id": consult_id,
                                               "sdp": "v=0\r\nm=video banana\r\n"})
    assert refused(client, "candidate", {"consult_id": consult_id, "candidate": "candidate:%%",
                                         "sdpMid": "0", "sdpMLineIndex": 0})
    assert refused(client, "media", {"consult_id": consult_id, "video": "off"})
    assert refused(client, "chat", {"consult_id": consult_id, "body": ""})
    assert refused(client, "offer", {"consult_id": consult_id, "sdp": "v=0"})
    # Oversized: an error, then the connection is closed.
    assert "too large" in refused(client, "chat", {"consult_id": consult_id,
                                                   "body": "x" * 20_000})
    wait_disconnected(client)


def test_flooding_ends_the_connection(call_consult: Any, world: dict[str, Any],
                                      signal_client: Callable[..., SignalClient]) -> None:
    client = signal_client(world["clinician"], transport="websocket")
    for _n in range(120):
        client.emit("media", {"consult_id": call_consult.id, "audio": True})
    error = client.wait("call_error", where=lambda d: "Too many" in d["message"])
    assert error["event"] == "media"
    wait_disconnected(client)
    # Somebody else is not affected by that socket's flood.
    calm = signal_client(world["specialist"])
    calm.emit("join", {"consult_id": call_consult.id})
    assert calm.wait("offer")["sdp"].startswith("v=0")
