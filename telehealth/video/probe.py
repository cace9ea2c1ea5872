"""The pre-call probe: a data-channel-only peer connection to the media engine.

The browser's pre-call check connects through the same ICE servers (and TURN credentials) as
a call, so a path a call could not take shows up here as "no connection". Over one ordered
data channel it then measures what a call would get:

- round trip: the browser sends `{"type": "ping", "n": 1}`, the server answers `pong` at once;
- downstream: on `{"type": "download", "bytes": N}` the server sends `download_start`, then N
  bytes in binary chunks; the browser times the chunks;
- upstream: the browser sends `{"type": "upload", "bytes": N}`, then N bytes; the server times
  them from the announcement to the last byte and answers `upload_done` with bytes and ms
  (a clinic sends video, so this is the direction that matters most);
- verdict: `{"type": "result", "rtt_ms": .., "down_bps": .., "camera": true}` gets back
  `verdict` from `profiles.recommend`, with the upstream rate the server measured itself.

Every coroutine here runs on the engine's loop thread (the owner of every aiortc object);
like the engine, this module imports neither Flask nor the database. A probe closes itself
after a hard time-out, on `bye`, when its channel or connection closes, and when it breaks
the rules (too many messages, more bytes than announced). How many are open is limited per
user and overall, and nothing queues without bound: requests beyond the limits are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy

from telehealth.video.engine import EngineError, IceServer, VideoEngine
from telehealth.video.profiles import recommend

logger = logging.getLogger(__name__)

CHANNEL_LABEL = "probe"
CHUNK_BYTES = 16 * 1024  # well under every browser's and aiortc's largest message
MAX_BURST_BYTES = 256 * 1024
MAX_BURSTS = 4  # downloads, and uploads, per probe
MAX_MESSAGES = 400  # text messages and upload chunks per probe
MAX_TEXT_CHARS = 500
MAX_OFFER_CHARS = 20_000


@dataclass(frozen=True)
class ProbeLimits:
    """How long one probe may live and how many may be open at once."""

    timeout_seconds: float = 30.0
    per_user: int = 2
    total: int = 20


class ProbeError(EngineError):
    """A probe request refused; `status` is the HTTP status that fits it."""

    status = 400


class ProbeBusy(ProbeError):
    """This user already has as many checks open as allowed."""

    status = 429


class ServerBusy(ProbeError):
    """This process has as many checks open as allowed."""

    status = 503


@dataclass
class Upload:
    expected: int
    started_at: float
    received: int = 0


@dataclass
class Probe:
    id: str
    user_key: str
    pc: RTCPeerConnection
    opened_at: float = field(default_factory=time.monotonic)
    channel: RTCDataChannel | None = None
    closed: bool = False
    messages: int = 0
    pings: int = 0
    downloads: int = 0
    uploads: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    upload: Upload | None = None
    up_bps: float | None = None
    rtt_ms: float | None = None
    down_bps: float | None = None
    verdict: str | None = None
    expiry: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class ProbeSummary:
    """What a closed probe measured and why it closed (kept briefly, for logs and tests)."""

    id: str
    user_key: str
    reason: str
    seconds: float
    pings: int
    bytes_sent: int
    bytes_received: int
    rtt_ms: float | None
    down_bps: float | None
    up_bps: float | None
    verdict: str | None


@dataclass(frozen=True)
class ProbeAnswer:
    id: str
    sdp: str


class ProbeRegistry:
    """The probes open in one engine; touched only on the engine's loop."""

    def __init__(self, engine: VideoEngine) -> None:
        self.engine = engine
        self.probes: dict[str, Probe] = {}
        self.finished: list[ProbeSummary] = []  # the last few closed probes
        self._tasks: set[asyncio.Task[None]] = set()
        engine.on_shutdown(self._close_all)

    # ------------------------------------------------------------------ sync API

    def open(self, user_key: str, offer_sdp: str, ice_servers: list[IceServer],
             limits: ProbeLimits) -> ProbeAnswer:
        """Answer a browser's offer (one data channel) with a new probe connection."""
        if not offer_sdp.startswith("v=0") or len(offer_sdp) > MAX_OFFER_CHARS:
            raise ProbeError("not an SDP offer")
        if "m=application" not in offer_sdp:
            raise ProbeError("the offer has no data channel")
        return self.engine.run(self._open(user_key, offer_sdp, ice_servers, limits))

    def open_count(self, user_key: str | None = None) -> int:
        """Probes open now (for one user, or all)."""
        return self.engine.run(self._count(user_key))

    def close_all(self) -> None:
        """Close every probe (between tests; the engine's shutdown does it too)."""
        if self.engine.running:
            self.engine.run(self._close_all())

    # ------------------------------------------------------------------ on the loop

    async def _count(self, user_key: str | None) -> int:
        return sum(1 for p in self.probes.values() if user_key in (None, p.user_key))

    async def _open(self, user_key: str, offer_sdp: str, ice_servers: list[IceServer],
                    limits: ProbeLimits) -> ProbeAnswer:
        if sum(1 for p in self.probes.values() if p.user_key == user_key) >= limits.per_user:
            raise ProbeBusy("too many checks for this user")
        if len(self.probes) >= limits.total:
            raise ServerBusy("too many checks at once")
        pc = RTCPeerConnection(RTCConfiguration(
            iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                        for s in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        probe = Probe(secrets.token_urlsafe(8), user_key, pc)
        # Counted from now: a second request while this one negotiates sees it.
        self.probes[probe.id] = probe
        probe.expiry = asyncio.ensure_future(self._expire(probe, limits.timeout_seconds))

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if probe.channel is not None or channel.label != CHANNEL_LABEL:
                self._close_soon(probe, "unexpected data channel")
                return
            probe.channel = channel
            channel.on("message", lambda message: self._on_message(probe, message))
            channel.on("close", lambda: self._close_soon(probe, "channel closed"))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            logger.info("probe %s: connection %s", probe.id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self._close(probe, f"connection {pc.connectionState}")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError, KeyError, ... on bad SDP
            logger.info("probe %s: bad offer: %r", probe.id, exc)
            await self._close(probe, "bad offer")
            raise ProbeError("the offer is not valid SDP") from exc
        logger.info("probe %s: opened for %s", probe.id, user_key)
        return ProbeAnswer(probe.id, str(pc.localDescription.sdp))

    async def _expire(self, probe: Probe, seconds: float) -> None:
        await asyncio.sleep(seconds)
        probe.expiry = None  # do not cancel ourselves while closing
        await self._close(probe, "timeout")

    def _close_soon(self, probe: Probe, reason: str) -> None:
        if probe.closed:
            return
        task = asyncio.ensure_future(self._close(probe, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, probe: Probe, reason: str) -> None:
        if probe.closed:
            return
        probe.closed = True
        self.probes.pop(probe.id, None)
        if probe.expiry is not None:
            probe.expiry.cancel()
        # The summary is written before closing, so whoever sees the probe gone finds it.
        summary = ProbeSummary(probe.id, probe.user_key, reason,
                               round(time.monotonic() - probe.opened_at, 1), probe.pings,
                               probe.bytes_sent, probe.bytes_received, probe.rtt_ms,
                               probe.down_bps, probe.up_bps, probe.verdict)
        self.finished = [*self.finished[-9:], summary]
        await probe.pc.close()
        logger.info("probe %s: closed (%s) after %.1f s, %d pings, %d B down, %d B up, %s",
                    probe.id, reason, summary.seconds, probe.pings, probe.bytes_sent,
                    probe.bytes_received, probe.verdict or "no verdict")

    async def _close_all(self) -> None:
        for probe in list(self.probes.values()):
            await self._close(probe, "shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ the channel

    def _send(self, probe: Probe, payload: dict[str, Any]) -> None:
        if probe.channel is not None and probe.channel.readyState == "open":
            probe.channel.send(json.dumps(payload))

    def _on_message(self, probe: Probe, message: str | bytes) -> None:
        if probe.closed:
            return
        probe.messages += 1
        if probe.messages > MAX_MESSAGES:
            self._close_soon(probe, "too many messages")
        elif isinstance(message, bytes):
            self._on_bytes(probe, message)
        else:
            try:
                data = json.loads(message) if len(message) <= MAX_TEXT_CHARS else None
            except ValueError:
                data = None
            if not isinstance(data, dict):
                self._close_soon(probe, "message not understood")
            else:
                self._on_request(probe, data)

    def _on_bytes(self, probe: Probe, chunk: bytes) -> None:
        upload = probe.upload
        if upload is None or upload.received + len(chunk) > upload.expected:
            self._close_soon(probe, "bytes not announced")
            return
        upload.received += len(chunk)
        probe.bytes_received += len(chunk)
        if upload.received == upload.expected:
            seconds = max(time.monotonic() - upload.started_at, 0.001)
            probe.upload, probe.up_bps = None, upload.received * 8 / seconds
            self._send(probe, {"type": "upload_done", "bytes": upload.received,
                               "ms": round(seconds * 1000, 1), "up_bps": round(probe.up_bps)})

    def _on_request(self, probe: Probe, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "ping":
            probe.pings += 1
            self._send(probe, {"type": "pong", "n": data.get("n")})
        elif kind in ("download", "upload"):
            size = data.get("bytes")
            if (not isinstance(size, int) or isinstance(size, bool)
                    or not 0 < size <= MAX_BURST_BYTES):
                self._close_soon(probe, f"bad {kind} size")
            elif kind == "download":
                self._download(probe, size)
            else:
                self._start_upload(probe, size)
        elif kind == "result":
            self._verdict(probe, data)
        elif kind == "bye":
            self._close_soon(probe, "done")
        else:
            self._close_soon(probe, "unknown request")

    def _download(self, probe: Probe, size: int) -> None:
        probe.downloads += 1
        if probe.downloads > MAX_BURSTS or probe.channel is None:
            self._close_soon(probe, "too many downloads")
            return
        self._send(probe, {"type": "download_start", "bytes": size})
        # Random bytes: nothing on the path can compress them into a flattering figure.
        body = secrets.token_bytes(size)
        for offset in range(0, size, CHUNK_BYTES):
            probe.channel.send(body[offset:offset + CHUNK_BYTES])
        probe.bytes_sent += size

    def _start_upload(self, probe: Probe, size: int) -> None:
        probe.uploads += 1
        if probe.uploads > MAX_BURSTS or probe.upload is not None:
            self._close_soon(probe, "too many uploads")
            return
        probe.upload = Upload(size, time.monotonic())

    def _verdict(self, probe: Probe, data: dict[str, Any]) -> None:
        numbers = [data.get(key) for key in ("rtt_ms", "down_bps", "up_bps")]
        camera = data.get("camera")
        if (not isinstance(camera, bool)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
                           for v in numbers[:2])):
            self._close_soon(probe, "result not understood")
            return
        rtt, down, browser_up = (float(v) if isinstance(v, int | float) else None
                                 for v in numbers)
        # Our own timing of the upload when it finished; else what the browser saw leave it.
        up = probe.up_bps if probe.up_bps is not None else browser_up
        if rtt is None or down is None or up is None:
            self._close_soon(probe, "result not understood")
            return
        probe.rtt_ms, probe.down_bps = rtt, down
        probe.verdict = recommend(rtt, down, up, camera)
        self._send(probe, {"type": "verdict", "verdict": probe.verdict, "up_bps": round(up)})


_REGISTRIES: weakref.WeakKeyDictionary[VideoEngine, ProbeRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def probes_for(engine: VideoEngine) -> ProbeRegistry:
    """The probe registry of this engine (created on first use)."""
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(engine)
        if registry is None:
            registry = _REGISTRIES[engine] = ProbeRegistry(engine)
        return registry
