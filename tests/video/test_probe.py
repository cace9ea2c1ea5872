"""The pre-call probe: an aiortc client measures the link to the media server through it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from flask import Flask

from telehealth.accounts.models import User
from telehealth.extensions import db
from telehealth.video.hub import get_hub
from telehealth.video.probe import MAX_BURST_BYTES, ProbeRegistry, ProbeSummary, probes_for
from telehealth.video.profiles import AUDIO_ONLY_BPS, PROFILES, needed_bps, recommend
from tests.video.conftest import login_cookie

BURST = 128 * 1024


class ProbeClient:
    """What check.js does, in aiortc: offer a data channel, then ping, download, upload."""

    def __init__(self, base_url: str, cookie: str) -> None:
        self.url = f"{base_url}/call/check/probe"
        self.cookie = cookie
        self.pc = RTCPeerConnection()
        self.channel: RTCDataChannel = self.pc.createDataChannel("probe", ordered=True)
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.bytes_received = 0
        self.closed = asyncio.Event()
        self.channel.on("message", self._on_message)
        self.channel.on("close", self.closed.set)

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.bytes_received += len(message)
        else:
            self.messages.put_nowait(json.loads(message))

    async def post(self, body: Any) -> requests.Response:
        """POST to the probe endpoint without blocking this loop."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: requests.post(
            self.url, json=body, headers={"Cookie": self.cookie}, timeout=20))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def connect(self) -> dict[str, Any]:
        response = await self.post({"sdp": await self.offer()})
        assert response.status_code == 200, response.text
        answer = response.json()
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(opened.wait(), 10)
        return dict(answer)

    def send(self, payload: dict[str, Any]) -> None:
        self.channel.send(json.dumps(payload))

    async def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.messages.get(), timeout)
            if message["type"] == kind:
                return message

    async def ping(self, n: int) -> float:
        start = time.monotonic()
        self.send({"type": "ping", "n": n})
        pong = await self.next("pong")
        assert pong["n"] == n
        return (time.monotonic() - start) * 1000

    async def download(self, size: int) -> float:
        self.send({"type": "download", "bytes": size})
        await self.next("download_start")
        start = time.monotonic()
        deadline = start + 10
        while self.bytes_received < size and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self.bytes_received * 8 / max(time.monotonic() - start, 0.001)

    async def upload(self, size: int) -> dict[str, Any]:
        self.send({"type": "upload", "bytes": size})
        for offset in range(0, size, 16 * 1024):
            self.channel.send(bytes(min(16 * 1024, size - offset)))
        return await self.next("upload_done")

    async def close(self) -> None:
        await self.pc.close()


def registry(app: Flask) -> ProbeRegistry:
    return probes_for(get_hub(app).engine)


def last_probe(app: Flask) -> ProbeSummary:
    return registry(app).finished[-1]


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture()
def cookie_for(live_server: str) -> Iterator[Any]:
    def make(user: User | None) -> str:
        db.session.commit()  # the server thread must see the user
        return login_cookie(live_server, user)

    yield make


def test_probe_measures_round_trip_download_and_upload(
        app: Flask, live_server: str, world: dict[str, Any], cookie_for: Any) -> None:
    cookie = cookie_for(world["clinician"])

    async def scenario() -> None:
        client = ProbeClient(live_server, cookie)
        try:
            await client.connect()
            rtts = [await client.ping(n) for n in range(1, 6)]
            assert all(0 < rtt < 1000 for rtt in rtts)
            down_bps = await client.download(BURST)
            assert client.bytes_received == BURST
            done = await client.upload(BURST)
            assert done["bytes"] == BURST and done["ms"] > 0
            assert done["up_bps"] == pytest.approx(BURST * 8 / (done["ms"] / 1000), rel=0.01)
            client.send({"type": "result", "rtt_ms": sorted(rtts)[2], "down_bps": down_bps,
                         "up_bps": done["up_bps"], "camera": True})
            verdict = await client.next("verdict")
            assert verdict["verdict"] == "standard"  # loopback carries far more than 832 kbps
            client.send({"type": "bye"})
            await asyncio.wait_for(client.closed.wait(), 10)
        finally:
            await client.close()
        await until(lambda: registry(app).open_count() == 0)

    asyncio.run(scenario())
    probe = last_probe(app)
    assert probe.reason == "done"
    assert (probe.pings, probe.bytes_sent, probe.bytes_received) == (5, BURST, BURST)
    assert probe.verdict == "standard" and probe.rtt_ms is not None and probe.rtt_ms > 0


def test_probe_closes_itself_after_its_time_limit(
        app: Flask, live_server: str, world: dict[str, Any], cookie_for: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "VIDEO_PROBE_TIMEOUT", 1)
    cookie = cookie_for(world["clinician"])

    async def scenario() -> None:
        client = ProbeClient(live_server, cookie)
        try:
            await client.connect()
            assert registry(app).open_count() == 1
            # The page never says goodbye: the server ends the probe anyway.
            await asyncio.wait_for(client.closed.wait(), 10)
            assert registry(app).open_count() == 0
        finally:
            await client.close()

    asyncio.run(scenario())
    assert last_probe(app).reason == "timeout"


def test_probe_breaking_the_rules_is_closed(
        app: Flask, live_server: str, world: dict[str, Any], cookie_for: Any) -> None:
    cookie = cookie_for(world["clinician"])

    async def scenario(abuse: Any) -> None:
        client = ProbeClient(live_server, cookie)
        try:
            await client.connect()
            abuse(client)
            await asyncio.wait_for(client.closed.wait(), 10)
        finally:
            await client.close()

    def closed_for(abuse: Any) -> str:
        """Why the server closed the probe (its summary is written after the client saw
        the close, on the engine's loop: wait for it)."""
        before = {summary.id for summary in registry(app).finished}
        asyncio.run(scenario(abuse))
        deadline = time.monotonic() + 10
        while not (new := [x for x in registry(app).finished if x.id not in before]):
            assert time.monotonic() < deadline, "the probe's summary never came"
            time.sleep(0.05)
        return new[-1].reason

    assert closed_for(lambda c: c.channel.send(b"x" * 1000)) == "bytes not announced"
    assert closed_for(lambda c: c.send({"type": "download", "bytes": MAX_BURST_BYTES + 1})) \
        == "bad download size"
    assert closed_for(lambda c: c.channel.send("not json")) == "message not understood"


def test_probes_are_limited_per_user_and_overall(
        app: Flask, live_server: str, world: dict[str, Any], cookie_for: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "VIDEO_PROBE_TOTAL", 3)
    clinician, specialist = cookie_for(world["clinician"]), cookie_for(world["specialist"])

    async def scenario() -> None:
        clients = []
        try:
            async def attempt(cookie: str) -> requests.Response:
                client = ProbeClient(live_server, cookie)
                clients.append(client)
                return await client.post({"sdp": await client.offer()})

            assert [(await attempt(clinician)).status_code for _n in range(2)] == [200, 200]
            refused = await attempt(clinician)
            assert refused.status_code == 429
            assert "wait a moment" in refused.json()["error"]
            assert (await attempt(specialist)).status_code == 200  # one user's limit only
            busy = await attempt(specialist)
            assert busy.status_code == 503 and "busy" in busy.json()["error"]
            assert registry(app).open_count() == 3
        finally:
            for client in clients:
                await client.close()

    asyncio.run(scenario())
    registry(app).close_all()
    assert registry(app).open_count() == 0


@pytest.mark.parametrize("body", [
    {"sdp": "hello"},
    {"sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nm=application broken\r\n"},
    {"sdp": "v=0\r\n" + "a=x\r\n" * 5000 + "m=application"},
    {"sdp": 42},
    {"offer": "v=0"},
    ["v=0"],
])
def test_bad_offers_get_a_clear_json_error(
        app: Flask, live_server: str, world: dict[str, Any], cookie_for: Any,
        body: Any) -> None:
    cookie = cookie_for(world["clinician"])
    response = requests.post(f"{live_server}/call/check/probe", json=body,
                             headers={"Cookie": cookie}, timeout=20)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] in ("The check's connection offer is not valid.",
                                        "The check did not send a connection offer.")
    assert registry(app).open_count() == 0


def test_a_valid_offer_without_a_data_channel_is_refused(
        app: Flask, live_server: str, world: dict[str, Any], cookie_for: Any) -> None:
    cookie = cookie_for(world["clinician"])

    async def scenario() -> requests.Response:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        try:
            await pc.setLocalDescription(await pc.createOffer())
            return await asyncio.get_running_loop().run_in_executor(None, lambda: requests.post(
                f"{live_server}/call/check/probe", json={"sdp": pc.localDescription.sdp},
                headers={"Cookie": cookie}, timeout=20))
        finally:
            await pc.close()

    response = asyncio.run(scenario())
    assert response.status_code == 400 and "not valid" in response.json()["error"]


def test_probe_needs_a_signed_in_user(live_server: str, cookie_for: Any) -> None:
    response = requests.post(f"{live_server}/call/check/probe", json={"sdp": "v=0"},
                             headers={"Cookie": cookie_for(None)}, timeout=20)
    assert response.status_code == 401
    assert response.json()["error"] == "Your session has ended; please sign in again."


@pytest.mark.parametrize(("rtt", "down", "up", "camera", "verdict"), [
    (20, 5_000_000, 2_000_000, True, "standard"),
    (20, 5_000_000, 2_000_000, False, "audio"),  # no camera: no video call
    (20, 5_000_000, 300_000, True, "low"),  # the upload is what a clinic lacks
    (900, 5_000_000, 2_000_000, True, "audio"),  # too slow a round trip for video
    (20, 100_000, 100_000, True, "audio"),
    (20, 20_000, 2_000_000, True, "written"),
    (2000, 5_000_000, 2_000_000, True, "written"),
])
def test_recommendation_follows_the_profiles(rtt: float, down: float, up: float,
                                             camera: bool, verdict: str) -> None:
    assert recommend(rtt, down, up, camera) == verdict


def test_thresholds_come_from_the_profiles() -> None:
    low, standard = PROFILES["low"], PROFILES["standard"]
    assert needed_bps(low) == 216_000 and needed_bps(standard) == 832_000
    assert recommend(20, needed_bps(standard), needed_bps(standard), True) == "standard"
    assert recommend(20, needed_bps(standard) - 1, needed_bps(standard), True) == "low"
    assert recommend(20, needed_bps(low) - 1, 10**7, True) == "audio"
    assert recommend(20, AUDIO_ONLY_BPS - 1, 10**7, True) == "written"
