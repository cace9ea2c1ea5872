"""The /call signaling as an independent client sees it (issue 10): one socket's events are
handled in the order sent; rejoining alone always works and leaks nothing; every wrong
payload gets a clear refusal; a `low` receiver never gets more than its ceiling."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiortc.codecs.vpx import Vp8Encoder
from flask import Flask
from sqlalchemy import select

from telehealth.accounts.models import Role
from telehealth.extensions import db
from telehealth.extensions import socketio as flask_socketio
from telehealth.video.codecs import _VP8_BITRATE_ATTR
from telehealth.video.events import CallNamespace
from telehealth.video.guard import MAX_ID, SHAPES, RateLimits
from telehealth.video.hub import get_hub
from telehealth.video.models import CallMessage, VideoParticipation, VideoSession
from tests.video.conftest import SignalClient, login_cookie
from tests.video.media import TexturedTrack
from tests.video.peers import CallPeer
from tests.video.test_call import until
from tests.video.test_forwarding import sent_by_client


@pytest.fixture()
def no_rate_limit(app: Flask, live_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let one socket send a few hundred events at once (the flood limit is tested apart)."""
    for namespace in flask_socketio.server.namespace_handlers.values():
        if isinstance(namespace, CallNamespace):
            monkeypatch.setattr(namespace, "rates", RateLimits(burst=10_000))


def open_fds() -> int:
    """Open descriptors, less the database pool's files: a pool that opens one more
    connection for a server thread is not a leaking peer connection."""
    gc.collect()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        count += not target.endswith((".sqlite", ".sqlite-journal", ".sqlite-wal"))
    return count


def participations(consult_id: int) -> list[VideoParticipation]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(VideoParticipation).join(VideoSession)
        .where(VideoSession.consult_id == consult_id).order_by(VideoParticipation.id)))


def test_one_sockets_events_are_handled_and_stored_in_order(
        app: Flask, call_consult: Any, world: dict[str, Any], no_rate_limit: None,
        signal_client: Callable[..., SignalClient]) -> None:
    client = signal_client(world["clinician"], transport="websocket")
    consult_id = call_consult.id
    client.emit("join", {"consult_id": consult_id})
    client.wait("offer")

    lines = [f"line {n:03d}" for n in range(200)]
    for line in lines:
        client.emit("chat", {"consult_id": consult_id, "body": line})
    assert [client.wait("chat", 30)["body"] for _line in lines] == lines
    db.session.expire_all()
    stored = db.session.scalars(select(CallMessage.body).join(VideoSession).where(
        VideoSession.consult_id == consult_id).order_by(CallMessage.id))
    assert list(stored) == lines

    client.order.clear()
    for _n in range(50):
        client.emit("leave", {"consult_id": consult_id})
        client.emit("join", {"consult_id": consult_id})
    for _n in range(50):
        client.wait("offer", 60)
    seen = [name for name, _data in list(client.order) if name in ("left", "offer")]
    assert seen == ["left", "offer"] * 50
    assert not client.drain("call_error")
    # The last event was a join: the page is in the call, once.
    hub = get_hub(app)
    assert list(hub.members[consult_id]) == [f"u{world['clinician'].id}"]
    assert hub.engine.participants(f"consult-{consult_id}") == [f"u{world['clinician'].id}"]
    deadline = time.monotonic() + 5  # the last join commits just after its offer is sent
    while len(rows := participations(consult_id)) < 51 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(rows) == 51
    assert [r.left_reason for r in rows[:50]] == ["left"] * 50
    assert rows[50].left_at is None


def test_rejoining_alone_succeeds_every_time_and_leaks_no_descriptor(
        app: Flask, live_server: str, call_consult: Any, world: dict[str, Any]) -> None:
    hub = get_hub(app)
    hub.engine.start()
    db.session.commit()
    cookie = login_cookie(live_server, world["clinician"])
    room = f"consult-{call_consult.id}"
    start = open_fds()

    async def join(signal: SignalClient) -> CallPeer:
        peer = CallPeer(signal, "red")
        await peer.join(call_consult.id)
        assert peer.pc is not None
        pc = peer.pc
        await until(lambda: pc.connectionState == "connected", 20)
        assert not signal.drain("call_error")
        assert hub.engine.participants(room) == [peer.participant_id]
        return peer

    async def scenario() -> None:
        signal = SignalClient(live_server, cookie)
        signal.connect()
        peer = await join(signal)
        signals = [signal]
        try:
            for _n in range(20):  # a page that joins again on the same socket
                old, peer = peer, await join(signal)
                await old.close()
            for _n in range(20):  # a reload: a new page joins, then the old one goes
                fresh = SignalClient(live_server, cookie)
                fresh.connect()
                signals.append(fresh)
                old, peer = peer, await join(fresh)
                await old.close()
                signals.pop(0).close()
            assert hub.engine.stats()["peer_connections"] == 1
            signals[0].emit("leave", {"consult_id": call_consult.id})
            await signals[0].await_event("left")
        finally:
            await peer.close()
            for signal in signals:
                signal.close()

    asyncio.run(scenario())
    deadline = time.monotonic() + 20
    while (hub.engine.stats()["peer_connections"] or open_fds() > start) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hub.engine.stats() == {"rooms": 0, "peer_connections": 0}
    # A leaking connection would add descriptors at each of the 40 rejoins; the database
    # pool may open one or two more connections for the server's threads meanwhile.
    assert open_fds() <= start + 2, (open_fds(), start)
    rows = participations(call_consult.id)
    assert len(rows) == 41 and all(r.left_at is not None for r in rows)


# Values of the wrong type (or out of range) for each kind of field.
WRONG = {int: ["1", 1.5, True, [], {}, 2**64, 2**63, MAX_ID + 1, -1, 0],
         str: [1, 2.5, True, [], {}, ["low"], {"name": "low"}],
         bool: ["yes", 1, 0.0, [], {}]}
NOT_OBJECTS: list[Any] = [None, [], ["consult"], "consult 1", 7, True, 1.5]


def wrong_payloads(consult_id: int) -> Iterator[tuple[str, Any]]:
    """(event, payload) for every event: not an object, then each field wrong in turn."""
    for event, shape in SHAPES.items():
        valid = {"consult_id": consult_id, "sdp": "v=0", "candidate": "candidate:x",
                 "body": "hello"}
        base = {name: valid[name] for name, spec in shape.items() if spec.required}
        for payload in NOT_OBJECTS:
            yield event, payload
        for name, spec in shape.items():
            for value in WRONG[spec.types[0]]:
                if not spec.accepts(value):
                    yield event, {**base, name: value}


def test_every_wrong_payload_for_every_event_gets_a_clear_refusal(
        call_consult: Any, world: dict[str, Any], no_rate_limit: None,
        signal_client: Callable[..., SignalClient], caplog: pytest.LogCaptureFixture) -> None:
    # Every handler of the namespace has a payload shape (a new event cannot skip it).
    handlers = {name[3:] for name in dir(CallNamespace) if name.startswith("on_")}
    assert handlers - {"connect", "disconnect"} == set(SHAPES)
    caplog.set_level(logging.INFO)
    client = signal_client(world["clinician"])
    client.emit("join", {"consult_id": call_consult.id})
    client.wait("offer")
    cases = list(wrong_payloads(call_consult.id))
    assert len(cases) > 150
    for event, payload in cases:
        client.emit(event, payload)
        error = client.wait("call_error")
        assert error["event"] == event, (event, payload, error)
        assert "went wrong" not in error["message"], (event, payload, error)
        assert error["message"].startswith("The message"), (event, payload, error)
    assert client.connected
    # The largest id the database holds, naming nothing: "no such consult", not a crash.
    client.emit("join", {"consult_id": MAX_ID})
    assert "No such consult" in client.wait("call_error")["message"]
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]


class GreedyVp8Encoder(Vp8Encoder):
    """VP8 at about 212 kbps whatever it is asked (the server's REMB requests are ignored).

    libvpx wanders around its target (more so on a loaded machine), so the encoder steers
    its target by what it really produced over the last 2 s.
    """

    GOAL_BPS = 212_000

    def __init__(self) -> None:
        super().__init__()
        setattr(self, _VP8_BITRATE_ATTR, self.GOAL_BPS)
        self.produced: list[tuple[float, int]] = []

    @property
    def target_bitrate(self) -> int:
        return int(getattr(self, _VP8_BITRATE_ATTR))

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        pass  # deaf to REMB

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        payloads, timestamp = super().encode(frame, force_keyframe)
        now = time.monotonic()
        self.produced = [(t, n) for t, n in self.produced if t > now - 2.0]
        self.produced.append((now, sum(len(p) for p in payloads)))
        span = now - self.produced[0][0]
        if span > 1.0:
            bps = sum(n for _t, n in self.produced) * 8 / span
            steered = self.target_bitrate * self.GOAL_BPS / max(bps, 1.0)
            setattr(self, _VP8_BITRATE_ATTR, int(min(600_000, max(150_000, steered))))
        return payloads, timestamp


def window_peaks(samples: list[tuple[float, int]], seconds: float = 4.0) -> float:
    """The highest rate (bits/s) over any span of at least `seconds` between two samples
    (time, octets sent), each span as short as the samples allow."""
    peak = 0.0
    for i, (start, octets) in enumerate(samples):
        later = next(((t, o) for t, o in samples[i + 1:] if t - start >= seconds), None)
        if later is not None:
            peak = max(peak, (later[1] - octets) * 8 / (later[0] - start))
    return peak


def test_a_low_receiver_never_gets_more_than_its_ceiling_from_any_source(
        app: Flask, call_consult: Any, world: dict[str, Any], make_user: Callable[..., Any],
        signal_client: Callable[..., SignalClient]) -> None:
    colleague = make_user(Role.CLINICIAN, clinic=world["clinic"])
    signals = [signal_client(world["specialist"]), signal_client(world["clinician"]),
               signal_client(colleague)]

    async def scenario() -> None:
        receiver = CallPeer(signals[0], "blue")
        # Just over `low` (212 kbps against 200), deaf to the server's bitrate requests;
        # and aiortc's stock encoder on a large busy picture.
        greedy = CallPeer(signals[1], "red", video=TexturedTrack("red"),
                          video_encoder=GreedyVp8Encoder())
        stock = CallPeer(signals[2], "green", video=TexturedTrack("green", 640, 480),
                         limits=False)
        peers = [receiver, greedy, stock]
        samples: dict[str, list[tuple[float, int]]] = {}
        try:
            for peer in peers:
                await peer.join(call_consult.id, profile="low")
            layout = await signals[0].await_event(
                "peers", 15, where=lambda d: len(d["peers"]) == 2 and all(
                    p["video_mid"] for p in d["peers"]))
            mids = {p["id"]: p["video_mid"] for p in layout["peers"]}
            assert receiver.pc is not None
            receivers = {t.mid: t.receiver for t in receiver.pc.getTransceivers()
                         if t.mid in mids.values()}
            source: list[tuple[float, int]] = []
            began = time.monotonic()
            while time.monotonic() - began < 16:
                source.append((time.time(), await sent_by_client(greedy)))
                for mid, rtp_receiver in receivers.items():
                    for stat in (await rtp_receiver.getStats()).values():
                        if stat.type == "remote-outbound-rtp" and stat.remoteTimestamp:
                            point = (stat.remoteTimestamp.timestamp(), stat.bytesSent)
                            seen = samples.setdefault(mid, [])
                            if not seen or seen[-1] != point:
                                seen.append(point)
                await asyncio.sleep(0.2)
            # The source really is over the ceiling, and deaf to the server's requests.
            assert window_peaks(source) > 205_000, source
            assert greedy.participant_id in mids and stock.participant_id in mids
            for pid, mid in mids.items():
                got = receiver.colours_from(layout, pid)
                # Pictures did arrive (colours are sampled every 5th frame): 5 fps or more.
                assert sum(got.values()) >= 16, (pid, got)
                assert len(samples[mid]) >= 8, samples
                assert window_peaks(samples[mid]) <= 200_000, (pid, samples[mid])
        finally:
            for peer in peers:
                await peer.close()

    asyncio.run(scenario())
