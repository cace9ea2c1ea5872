"""Light aiortc participants for conference rooms (tests/video/test_conference_*.py and
bench/conference.py).

A conference test needs a dozen participants on a small shared machine, the bench thirty,
so these clients neither encode nor decode. Each sends media encoded once at start: a
picture loop in its own shade of grey (VP8, keyframe first) and a tone of its own pitch
(Opus), with the audio level it is told to have written into every audio packet as a
browser does (RFC 6464). What a client receives is named by its bytes: the server forwards
frames as they were sent, so a frame's bytes tell whose it is (a re-encoded frame would
be named by nobody, which the tests would notice). They read packets as they arrive, with
neither jitter buffer nor decoder.

They behave as Chrome does where the server asks for less: when the offer's Opus fmtp says
`usedtx=1` (conference rooms), a client whose level is that of silence sends one small
comfort-noise packet every 400 ms, its RTP clock running on; and when the server says nobody
is shown its video (`set_video_wanted(False)`, what call.js does with `send_video`), it
sends no video until told again, then starts with a keyframe, its RTP clock having run on.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import vp8_depayload
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtp import RtpPacket
from av.packet import Packet

from telehealth.video.codecs import on_keyframe_request

SPEAKING = 25  # dBov of ordinary speech (RFC 6464 levels: 0 loudest .. 127 silent)
QUIET = 80  # a room's background noise, under the speech threshold
# Opus's voice detection takes what is quieter than this (-dBov) for silence; with DTX on,
# a silent client sends a comfort-noise packet every DTX_INTERVAL_MS, as Chrome does.
DTX_SILENCE_DBOV = 60
DTX_INTERVAL_MS = 400
AUDIO_RATE = 48_000
VIDEO_CLOCK = 90_000

# Whose media each frame is: frame bytes -> participant id, for every recording made here.
_OWNERS: dict[bytes, str] = {}
_SHARED: set[bytes] = set()


@dataclass(frozen=True)
class Recording:
    """One participant's media, encoded once."""

    video: tuple[bytes, ...]  # one picture loop; the first frame is a keyframe
    audio: tuple[bytes, ...]  # Opus frames, one second of them
    comfort: bytes  # the comfort-noise frame a silent client sends with DTX on
    fps: int
    size: tuple[int, int]
    audio_ms: int


def record(owner: str, shade: int, width: int = 160, height: int = 120, fps: int = 15,
           video_bps: int = 80_000, audio_bps: int = 16_000, seconds: float = 2.0,
           audio_ms: int = 20) -> Recording:
    """Encode `owner`'s media: a grey picture of `shade` (16..235) with a moving grain band
    (so that every frame costs bits, like a camera), CBR near `video_bps`; a tone in Opus
    frames of `audio_ms` (browsers send 20 ms; 60 ms is a third of the packets, for tests
    that must fit many clients on a loaded machine)."""
    count = int(seconds * fps)
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate, codec.framerate = video_bps, fractions.Fraction(fps)
    codec.time_base = fractions.Fraction(1, fps)
    codec.gop_size = count  # one keyframe, at the start of the loop
    codec.thread_count = 1  # libvpx's threads cost more than they save on a small picture
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "maxrate": str(video_bps), "minrate": str(video_bps),
                     "bufsize": str(video_bps // 2), "undershoot-pct": "100"}
    seed = zlib.crc32(owner.encode())  # each owner's own grain and pitch: bytes of their own
    rows = numpy.random.default_rng(seed).integers(-12, 13, (height, width))
    video: list[bytes] = []
    for n in range(count):
        picture = numpy.full((height * 3 // 2, width), 128, numpy.uint8)  # grey chroma
        picture[:height] = shade
        band = slice(height // 6, height * 5 // 6)  # grain moving sideways
        picture[band] = numpy.clip(shade + numpy.roll(rows[band], n * 5, axis=1), 0, 255)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts, frame.time_base = n, fractions.Fraction(1, fps)
        video.extend(bytes(p) for p in codec.encode(frame))
    video.extend(bytes(p) for p in codec.encode(None))

    opus = av.CodecContext.create("libopus", "w")
    opus.bit_rate, opus.sample_rate, opus.layout, opus.format = audio_bps, AUDIO_RATE, "mono", "s16"
    opus.options = {"frame_duration": str(audio_ms)}
    step = AUDIO_RATE * audio_ms // 1000
    pitch = 200 + seed % 800  # Hz
    audio: list[bytes] = []
    tone = (6000 * numpy.sin(2 * numpy.pi * pitch * numpy.arange(AUDIO_RATE) / AUDIO_RATE))
    for n in range(AUDIO_RATE // step):  # one second
        samples = tone[n * step:(n + 1) * step].astype(numpy.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, n * step
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        audio.extend(bytes(p) for p in opus.encode(frame))
    # Comfort noise: one frame of the owner's own faint noise (a real one is a few bytes
    # of noise parameters; its bytes must name its owner here).
    hiss = numpy.random.default_rng(seed).integers(-40, 41, step).astype(numpy.int16)
    frame = av.AudioFrame.from_ndarray(hiss.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts = AUDIO_RATE, AUDIO_RATE
    frame.time_base = fractions.Fraction(1, AUDIO_RATE)
    packets = [bytes(p) for p in opus.encode(frame)] + [bytes(p) for p in opus.encode(None)]
    comfort = max(packets, key=len)

    for data in (*video, *audio, comfort):
        if _OWNERS.setdefault(data, owner) != owner:
            _SHARED.add(data)  # the same bytes from two people name neither
    return Recording(tuple(video), tuple(audio), comfort, fps, (width, height), audio_ms)


def owner_of(data: bytes) -> str | None:
    """Whose recording a received frame comes from (None: unknown or ambiguous)."""
    return None if data in _SHARED else _OWNERS.get(data)


def _asks_dtx(sdp: str) -> bool:
    """Whether the offer's first audio section asks for Opus DTX (usedtx=1 in its fmtp)."""
    for section in sdp.split("\r\nm=")[1:]:
        if not section.startswith("audio"):
            continue
        lines = section.split("\r\n")
        opus = {line.split()[0].split(":")[1] for line in lines
                if line.startswith("a=rtpmap:") and " opus/" in line.lower()}
        return any(line.startswith("a=fmtp:") and " " in line
                   and line.split()[0].split(":")[1] in opus
                   and "usedtx=1" in [p.strip() for p in line.split(" ", 1)[1].split(";")]
                   for line in lines)
    return False


class LoopTrack(MediaStreamTrack):
    """Sends pre-encoded frames in a loop at their real pace. For video, a keyframe request
    makes the next frame the loop's first (its keyframe).

    `every()` says how many frame times go by per frame sent: 1 (every frame), n (audio
    with DTX in silence: one `comfort` frame in n) or 0 (video paused: none). Frames not
    sent still move the RTP clock on, as a browser's capture clock does."""

    def __init__(self, kind: str, frames: tuple[bytes, ...], per_second: float,
                 every: Callable[[], int] = lambda: 1, comfort: bytes | None = None) -> None:
        super().__init__()
        self.kind, self.frames, self.per_second = kind, frames, per_second
        self.every, self.comfort = every, comfort
        clock = AUDIO_RATE if kind == "audio" else VIDEO_CLOCK
        self.time_base = fractions.Fraction(1, clock)
        self.step = round(clock / per_second)
        self.count = self.index = 0
        self.sent = 0
        self.start: float | None = None
        self._nudged = asyncio.Event()

    def restart(self) -> None:
        self.index = 0

    def nudge(self) -> None:
        """What `every()` says may have changed (the level rose, video was resumed)."""
        self._nudged.set()

    async def _wait(self, seconds: float | None) -> bool:
        """Sleep `seconds` (None: until nudged); True when nudged first."""
        self._nudged.clear()
        try:
            await asyncio.wait_for(self._nudged.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def recv(self) -> Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            now = time.monotonic()
            every = self.every()
            if self.start is not None and every != 1:
                # DTX silence or paused video: wait for the next frame that is sent (one in
                # `every`), or for a nudge; the clock runs on meanwhile.
                following = math.ceil(self.count / every) * every if every else None
                due = None if following is None else self.start + following / self.per_second
                if due is None or due > now:
                    if await self._wait(None if due is None else due - now):
                        elapsed = (time.monotonic() - self.start) * self.per_second
                        self.count = max(self.count, math.ceil(elapsed))
                        continue
                assert following is not None
                self.count = following
                data = self.comfort or self.frames[self.index]
            else:
                if self.start is None or now - self.start - self.count / self.per_second \
                        > 2 / self.per_second:
                    # First frame, or this loop fell behind (a loaded machine): go on from
                    # now at the steady rate, as a camera drops what it missed; a burst of
                    # late frames would look like a source sending far over its frame rate.
                    self.start = now - self.count / self.per_second
                await asyncio.sleep(max(0.0, self.start + self.count / self.per_second - now))
                data = self.frames[self.index]
                self.index = (self.index + 1) % len(self.frames)
            packet = Packet(data)
            packet.pts, packet.time_base = self.count * self.step, self.time_base
            self.count += 1
            self.sent += 1
            return packet


@dataclass
class Watch:
    """Resolves with the time the first video frame from `source` arrives after `since`."""

    source: str
    since: float
    future: asyncio.Future[float]


@dataclass
class LightPeer:
    """One participant: sends its recording, notes whose frames arrive on which mid."""

    pid: str
    recording: Recording
    level: int = QUIET  # what every audio packet says (RFC 6464 -dBov), settable any time
    pc: RTCPeerConnection | None = None
    # kind -> source -> when their last frame arrived
    last_heard: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"audio": {}, "video": {}})
    # mid -> whose frame came last on it
    mid_source: dict[str, str | None] = field(default_factory=dict)
    receiving: dict[str, str] = field(default_factory=dict)  # mid -> kind
    unknown_frames: int = 0  # frames nobody's recording has: re-encoded or corrupted
    watches: list[Watch] = field(default_factory=list)
    tracks: list[LoopTrack] = field(default_factory=list)
    dtx: bool = False  # the offer asked for Opus DTX
    video_wanted: bool = True  # the server has not said that nobody is shown our video
    # (monotonic time, wanted) of each pause / resume the server asked for
    video_asks: list[tuple[float, bool]] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("level", "video_wanted"):
            for track in getattr(self, "tracks", ()):
                track.nudge()  # speech ends DTX at once; a resume starts the video at once

    def silent(self) -> bool:
        return self.level >= DTX_SILENCE_DBOV

    def set_video_wanted(self, wanted: bool) -> None:
        """The server's `send_video`: stop, or start again with a keyframe (Chrome sends one
        when an encoding becomes active again)."""
        self.video_asks.append((time.monotonic(), wanted))
        if wanted and not self.video_wanted and len(self.tracks) > 1:
            self.tracks[1].restart()
        self.video_wanted = wanted

    async def answer(self, offer_sdp: str) -> str:
        """Take the server's offer: send on mids 0 and 1, catch every other mid."""
        self.dtx = _asks_dtx(offer_sdp)
        dtx_every = max(1, round(DTX_INTERVAL_MS / self.recording.audio_ms))
        self.tracks = [LoopTrack("audio", self.recording.audio, 1000 / self.recording.audio_ms,
                                 every=lambda: dtx_every if self.dtx and self.silent() else 1,
                                 comfort=self.recording.comfort),
                       LoopTrack("video", self.recording.video, self.recording.fps,
                                 every=lambda: 1 if self.video_wanted else 0)]
        self.pc = pc = RTCPeerConnection(RTCConfiguration(
            iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in pc.getTransceivers():
            mid = str(transceiver.mid)
            if mid in ("0", "1"):
                track = self.tracks[int(mid)]
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
                if track.kind == "video":
                    on_keyframe_request(transceiver.sender, track.restart)
                else:
                    self._write_levels(transceiver.sender)
            else:
                self.receiving[mid] = transceiver.kind
                self._catch(transceiver.receiver, transceiver.kind, mid)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def _write_levels(self, sender: Any) -> None:
        # aiortc writes the level of the frames it encodes; ours are encoded already, so the
        # level is set on each frame on its way out, as a browser's would be.
        original: Callable[[Any], Any] = sender._next_encoded_frame

        async def with_level(codec: Any) -> Any:
            frame = await original(codec)
            if frame is not None:
                frame.audio_level = -self.level  # aiortc sends -audio_level as -dBov
            return frame

        sender._next_encoded_frame = with_level

    def _catch(self, receiver: Any, kind: str, mid: str) -> None:
        # Frames are named as their last packet arrives (the marker bit, as a browser
        # does), not when aiortc's jitter buffer lets them go (with the next frame's first
        # packet, or later): no jitter buffer, no decoder, so light on the CPU.
        parts: list[bytes] = []
        timestamp: list[int | None] = [None]

        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
            if not packet.payload:
                return
            if kind == "audio":  # one Opus frame a packet
                self.heard(kind, mid, packet.payload)
                return
            if packet.timestamp != timestamp[0]:
                parts.clear()
                timestamp[0] = packet.timestamp
            parts.append(vp8_depayload(packet.payload))
            if packet.marker:
                self.heard(kind, mid, b"".join(parts))
                parts.clear()

        receiver._handle_rtp_packet = handle

    def heard(self, kind: str, mid: str, data: bytes) -> None:
        now = time.monotonic()
        source = owner_of(data)
        self.mid_source[mid] = source
        if source is None:
            self.unknown_frames += 1
            return
        self.last_heard[kind][source] = now
        if kind == "video" and self.watches:
            for watch in [w for w in self.watches if w.source == source and now >= w.since]:
                if not watch.future.done():
                    watch.future.set_result(now)
                self.watches.remove(watch)

    def video_from(self, source: str, since: float) -> asyncio.Future[float]:
        """When `source`'s video first arrives at or after `since` (monotonic seconds)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.watches.append(Watch(source, since, future))
        return future

    def hearing(self, kind: str, within: float) -> set[str]:
        """Whose `kind` arrived in the last `within` seconds."""
        now = time.monotonic()
        return {s for s, at in self.last_heard[kind].items() if now - at <= within}

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for track in self.tracks:
            track.stop()
