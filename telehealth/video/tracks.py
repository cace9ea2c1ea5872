"""Tracks inside the media engine: one feed per received track, one slot per sent track.

Forwarding first. A feed takes a participant's encoded frames (VP8, Opus) from aiortc's
receiver before its decoder, and every slot it fills hands them as they are to its sender,
which only packetizes them: no decode, no encode (the costs that kept a relaying room at
about half a core). A slot falls back to decoding and re-encoding with its participant's
profile only while the source does not fit that profile (too many bits, too large a picture,
too many frames per second), and goes back to forwarding once the source fits again.

A forwarded frame is sent by the slot's `RtpStream` (direct_send.py) as the feed hands it
over, on the loop, rather than queued for the sender's task to wake and take: one frame goes
to up to 29 lanes in a conference. The queue remains for decoded frames (re-encoding) and
for frames that come before the sender has started.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack, clock
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from av.frame import Frame
from av.packet import Packet

from telehealth.video import codecs, direct_send
from telehealth.video.profiles import Profile

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
# Decoded frames waiting in a slot: enough to ride out a slow encode, never a backlog.
SLOT_DEPTH = {"audio": 5, "video": 1}
# Encoded frames waiting in a slot. Dropping one breaks every later VP8 frame until the
# next keyframe, so a slot that overflows starts again from a keyframe instead.
FORWARD_DEPTH = {"audio": 25, "video": 30}
# How the source is measured: over the last STATS_WINDOW seconds, once MIN_SPAN is seen.
# Long enough that a keyframe (several times a delta frame) does not look like a flood.
STATS_WINDOW = 4.0
MIN_SPAN = 2.0
# Slack over the profile before a slot re-encodes (VBR encoders wander around their target).
VIDEO_BPS_SLACK, AUDIO_BPS_SLACK, FPS_SLACK, SIZE_SLACK, AREA_SLACK = 1.15, 1.6, 1.25, 1.05, 1.35
# A source must fit this long before a re-encoding slot forwards again (no flapping).
FIT_AGAIN_SECONDS = 5.0
# Picture loss requests to one source: at most one per this many seconds.
KEYFRAME_REQUEST_GAP = 0.5
_CLOCK_ORIGIN = time.monotonic()
_TIME_BASES: dict[int, fractions.Fraction] = {}


def _time_base(clock_rate: int) -> fractions.Fraction:
    # One Fraction per clock rate, not one per forwarded packet (thousands a second).
    base = _TIME_BASES.get(clock_rate)
    if base is None:
        base = _TIME_BASES[clock_rate] = fractions.Fraction(1, clock_rate)
    return base


@dataclass(frozen=True)
class Encoded:
    """One encoded frame from a source, as its receiver reassembled it."""

    data: bytes
    timestamp: int  # in the codec's clock, starting near 0 for this source
    clock_rate: int
    keyframe: bool
    # For sending at once (direct_send): whether this codec's frame can be sent as it is
    # packetized there (Opus, VP8), VP8's payloads packetized once for every lane, and
    # the NTP time the frame is sent at (read once for every lane).
    direct: bool = False
    vp8: tuple[bytes, ...] | None = None
    ntp: int = 0


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) when `data` is a VP8 keyframe (RFC 6386 9.1), else None."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return (int.from_bytes(data[6:8], "little") & 0x3FFF,
            int.from_bytes(data[8:10], "little") & 0x3FFF)


def copy_picture(frame: VideoFrame) -> VideoFrame:
    """A copy of a decoded picture that shares no buffer with it."""
    copy = VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
    copy.pts, copy.time_base = frame.pts, frame.time_base
    return copy


class ReceiverTap(queue.Queue[Any]):
    """Stands in for an aiortc receiver's decoder queue (see codecs.install_receiver_tap).

    aiortc puts every reassembled frame here for its decoder thread; the tap gives it to
    the feed first and lets the decoder have it only while some slot needs pictures.
    `put` is called on the engine's loop (from the receiver's RTP handler).
    """

    def __init__(self) -> None:
        super().__init__()
        self.feed: Feed | None = None
        self._decode = False
        self._awaiting_keyframe = True

    @property
    def decode(self) -> bool:
        return self._decode

    @decode.setter
    def decode(self, on: bool) -> None:
        if on and not self._decode:
            self._awaiting_keyframe = True  # a decoder cannot start on a delta frame
        self._decode = on

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver is stopping: let the decoder thread end
            super().put(item, block, timeout)
            return
        codec, frame = item
        keyframe = self.feed.on_encoded(codec, frame) if self.feed is not None else True
        if self._decode and (keyframe or not self._awaiting_keyframe):
            self._awaiting_keyframe = False
            super().put(item, block, timeout)


class SlotTrack(MediaStreamTrack):
    """What the server sends on one transceiver: the media of whoever fills the slot.

    The slot outlives the participants that fill it, so a sender never sees its track end
    (an ended track stops aiortc's sender for good). It forwards its source's encoded
    frames while they fit `profile`, else it passes decoded frames to the sender's
    profile encoder. Its queues are bounded.
    """

    def __init__(self, kind: str, profile: Profile,
                 on_keyframe_needed: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.profile = profile
        self.paused = False
        # Whether our sender runs (see `set_sending`): the engine clears it until the
        # participant's connection is up and their answer took this m-line.
        self.sending = True
        self.source: Feed | None = None
        self.transcoding = False
        # Asks our own sender's encoder for a keyframe (used when re-encoding starts).
        self.on_keyframe_needed = on_keyframe_needed
        self._queue: collections.deque[Frame | Encoded] = collections.deque()
        # What this slot sent lately, forwarded or re-encoded (shared with its encoder).
        self.window = codecs.ByteWindow()
        # Set when forwarding would have passed the ceiling: only a source measured within
        # the profile itself (no slack) is forwarded again.
        self.strict = False
        self._wake = asyncio.Event()
        self._awaiting_keyframe = kind == "video"
        self._fit_since: float | None = None
        self._last_sent = time.monotonic()
        self._tokens = 1.0
        # The sender's packets, when the engine writes them itself (direct_send): a
        # forwarded frame goes out at once instead of through this track's queue.
        self.stream: direct_send.RtpStream | None = None
        # Output timestamps: one steady clock per slot whichever source fills it.
        self._run_key: tuple[int, bool] | None = None
        self._offset = 0
        self._last_out: int | None = None

    @property
    def fps(self) -> int:
        return self.profile.fps

    # ------------------------------------------------------------------ set-up

    def set_source(self, feed: Feed | None) -> None:
        """Fill the slot with `feed`'s media (None empties it)."""
        self.source = feed
        self.clear()
        self.strict = False
        self.transcoding = feed is not None and feed.known() and not feed.fits(self.profile)
        self._fit_since = None
        if feed is not None:
            feed.update_decoding()
            self._restart()

    def set_profile(self, profile: Profile) -> None:
        """The receiving participant changed profile: decide again how to fill the slot."""
        self.profile = profile
        if self.source is not None:
            self._decide(self.source, force=True)

    @property
    def takes_media(self) -> bool:
        """Whether frames offered to this slot go anywhere."""
        return self.sending and not self.paused

    def set_sending(self, sending: bool) -> None:
        """Whether our sender runs. Until it does (the connection is not up yet, or never
        comes up), or when the participant's answer declined this m-line (port 0 or
        inactive), frames would only pile up here, and each overflow would ask the source
        for yet another keyframe (every two seconds), at the cost of everyone it sends to.
        Starting, the slot asks its source for a keyframe: the first picture comes at once."""
        if sending == self.sending:
            return
        self.sending = sending
        self.clear()
        if self.source is not None:
            self.source.update_decoding()
            if sending:
                self._restart()

    def request_keyframe(self) -> None:
        """Our receiver lost the picture (PLI/FIR): ask whoever makes our frames."""
        if self.source is not None and not self.transcoding:
            self.source.request_keyframe()

    def _restart(self) -> None:
        # A new run (new source or mode) starts from a keyframe.
        if self.kind != "video" or self.source is None:
            return
        if self.transcoding:
            self.source.request_keyframe()  # for the decoder
            if self.on_keyframe_needed is not None:
                self.on_keyframe_needed()  # for our encoder
        else:
            self._awaiting_keyframe = True
            self.source.request_keyframe()

    # ------------------------------------------------------------------ input (on the loop)

    def offer_encoded(self, feed: Feed, frame: Encoded) -> None:
        """An encoded frame from the source: forward it unless re-encoding."""
        if feed is not self.source or not self.takes_media:
            return
        self._decide(feed)
        if self.transcoding:
            return
        if self.kind == "video" and len(frame.data) > self.window.room(
                self.profile.video_max_bps, codecs.FORWARD_SHARE):
            # A source just over the ceiling that ignores our bitrate requests: forwarding it
            # would pass the receiver's profile, so re-encode it instead.
            self._reencode(feed, "over the ceiling")
            return
        if self._awaiting_keyframe:
            if not frame.keyframe:
                feed.request_keyframe()  # again (it is rate-limited): a request can be lost
                return
            self._awaiting_keyframe = False
        if len(self._queue) >= FORWARD_DEPTH[self.kind]:
            # The sender fell far behind: start again from a keyframe, never a backlog.
            logger.info("slot %s overflowed; waiting for a keyframe", self.kind)
            self._queue.clear()
            if self.kind == "video":
                self._awaiting_keyframe = True
                feed.request_keyframe()
                return
        if self.kind == "video":
            self.window.add(len(frame.data))
        stream = self.stream
        if frame.direct and stream is not None and stream.ready and not self._queue:
            # Sent now, not woken in the sender's task: in a conference each frame goes to
            # up to 29 lanes, and the wake-up and aiortc's per-packet work were most of the
            # engine's CPU. (Queued frames go first, in order: only with an empty queue.)
            step = frame.clock_rate // 30 if self.kind == "video" else 960
            stream.forward(frame.data, frame.vp8,
                           self._restamp((id(feed), False), frame.timestamp, step), frame.ntp)
            return
        self._queue.append(frame)
        self._wake.set()

    def offer_frame(self, feed: Feed, frame: Frame) -> None:
        """A decoded frame from the source: used only while re-encoding."""
        if feed is not self.source or not self.takes_media or not self.transcoding:
            return
        if self.kind == "video":
            # A token bucket, not a minimum gap: frames from the jitter buffer come in
            # uneven bursts, and a gap rule would drop many of a source at exactly `fps`.
            now = time.monotonic()
            self._tokens = min(2.0, self._tokens + (now - self._last_sent) * self.fps)
            self._last_sent = now
            if self._tokens < 1.0:
                return
            self._tokens -= 1.0
        if len(self._queue) >= SLOT_DEPTH[self.kind]:
            self._queue.popleft()  # the encoder is behind: drop the oldest picture
        self._queue.append(frame)
        self._wake.set()

    def _decide(self, feed: Feed, force: bool = False) -> None:
        """Forward or re-encode, from how the source measures against our profile."""
        now = time.monotonic()
        if not force and now - feed.judged_at.get(id(self), 0.0) < 0.5:
            return
        feed.judged_at[id(self)] = now
        if not feed.known():
            return
        fits = feed.fits(self.profile, strict=self.strict)
        if not self.transcoding and not fits:
            self._reencode(feed, "does not fit")
        elif self.transcoding:
            if not fits:
                self._fit_since = None
            elif self._fit_since is None:
                self._fit_since = now
            elif force or now - self._fit_since >= FIT_AGAIN_SECONDS:
                logger.info("slot %s: source %s fits %s again; forwarding", self.kind,
                            feed.label, self.profile.name)
                self.transcoding = False
                self._queue.clear()
                feed.update_decoding()
                self._restart()

    def _reencode(self, feed: Feed, why: str) -> None:
        logger.info("slot %s: source %s %s %s (%s); re-encoding", self.kind, feed.label, why,
                    self.profile.name, feed.describe())
        self.strict = self.strict or why == "over the ceiling"
        self.transcoding, self._fit_since = True, None
        self._queue.clear()
        feed.update_decoding()
        self._restart()

    # ------------------------------------------------------------------ output (the sender)

    def clear(self) -> None:
        """Forget queued media (the slot's participant left, or the mode changed)."""
        self._queue.clear()
        if self.kind == "video":
            self._awaiting_keyframe = True

    def _restamp(self, key: tuple[int, bool], timestamp: int, step: int) -> int:
        # Sources restart near 0 and each has its own clock; the receiver must see one
        # increasing timeline, so every run is shifted to follow on from the last output.
        if key != self._run_key:
            self._run_key = key
            self._offset = (self._last_out + step - timestamp) if self._last_out is not None \
                else -timestamp
        out = timestamp + self._offset
        if self._last_out is not None and out <= self._last_out:
            out = self._last_out + 1
        self._last_out = out
        return out

    async def recv(self) -> Frame | Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._queue:
                item = self._queue.popleft()
                source = id(self.source)
                if isinstance(item, Encoded):
                    packet = Packet(item.data)
                    step = item.clock_rate // 30 if self.kind == "video" else 960
                    packet.pts = self._restamp((source, False), item.timestamp, step)
                    packet.time_base = _time_base(item.clock_rate)
                    return packet
                if isinstance(item, VideoFrame) and item.pts is not None:
                    item.pts = self._restamp((source, True), item.pts, 3000)
                return item
            self._wake.clear()
            await self._wake.wait()

    def stop(self) -> None:
        super().stop()
        # Leave the feed: a feed outlives the slots of people who leave, and a slot holds
        # its sender (keyframe handler), hence a whole peer connection.
        if self.source is not None:
            self.source.detach(self)
        self.on_keyframe_needed = None
        self._queue.clear()
        self._wake.set()


class Feed:
    """One track a participant sends: its encoded frames, and decoded ones when needed.

    The feed measures its source (bits, frames per second, picture size) so that slots can
    decide to forward or re-encode. Its decoded track is always read, so aiortc's unbounded
    receive queue never grows.
    """

    def __init__(self, kind: str, label: str, receiver: Any, tap: ReceiverTap) -> None:
        self.kind = kind
        self.label = label
        self.receiver = receiver
        self.tap = tap
        tap.feed = self
        self.track: MediaStreamTrack | None = None  # the decoded track, once media arrives
        self.slots: set[SlotTrack] = set()
        self.size: tuple[int, int] | None = None
        self.judged_at: dict[int, float] = {}
        self.send_cap_bps: int | None = None
        # A moderator's mute: the media still arrives (and is measured) but goes nowhere.
        self.muted = False
        # (arrival, bytes, media time in seconds) of the frames of the last STATS_WINDOW.
        self._window: collections.deque[tuple[float, int, float]] = collections.deque()
        self._window_bytes = 0  # their bytes, kept as they come and go (bps() is frequent)
        self._keyframe_asked_at = 0.0
        self.keyframes_requested = 0
        self.last_frame_at = 0.0  # when the last frame came (monotonic): a paused source's stops
        self.task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        """Start reading the receiver's decoded track on the running loop."""
        self.track = track
        self.task = asyncio.ensure_future(self._run(track))

    # ------------------------------------------------------------------ slots

    def attach(self, slot: SlotTrack) -> None:
        """Send this feed's media into a slot (detaching it from its previous feed)."""
        if slot.source is not None and slot.source is not self:
            slot.source.detach(slot)
        self.slots.add(slot)
        slot.set_source(self)

    def detach(self, slot: SlotTrack) -> None:
        """Stop sending into a slot."""
        self.slots.discard(slot)
        self.judged_at.pop(id(slot), None)
        if slot.source is self:
            slot.set_source(None)
        self.update_decoding()

    def update_decoding(self) -> None:
        """Decode only while some slot re-encodes this feed."""
        wanted = any(s.transcoding and s.takes_media for s in self.slots)
        if wanted and not self.tap.decode:
            self.request_keyframe()  # the decoder starts clean from a keyframe
        self.tap.decode = wanted

    # ------------------------------------------------------------------ measuring

    def on_encoded(self, codec: Any, jitter_frame: Any) -> bool:
        """An encoded frame from the receiver (on the loop): measure it, hand it on.

        Returns whether it is a keyframe (every audio frame is)."""
        now = self.last_frame_at = time.monotonic()
        data = bytes(jitter_frame.data)
        keyframe = False
        if self.kind == "video":
            size = vp8_keyframe_size(data) if codec.name.lower() == "vp8" else None
            if size is not None:
                keyframe, self.size = True, size
        else:
            keyframe = True  # every Opus packet stands alone
        self._window.append((now, len(data), jitter_frame.timestamp / codec.clockRate))
        self._window_bytes += len(data)
        while self._window and self._window[0][0] < now - STATS_WINDOW:
            self._window_bytes -= self._window.popleft()[1]
        if self.muted or not self.slots:  # (a conference: most sources go nowhere)
            return keyframe
        name = codec.name.lower()
        frame = Encoded(data, int(jitter_frame.timestamp), int(codec.clockRate), keyframe,
                        direct=name in ("opus", "vp8"),
                        vp8=direct_send.vp8_template(data) if name == "vp8" else None,
                        ntp=clock.current_ntp_time())
        for slot in tuple(self.slots):
            slot.offer_encoded(self, frame)
        return keyframe

    def _span(self) -> float:
        if len(self._window) < 2:
            return 0.0
        return self._window[-1][0] - self._window[0][0]

    def known(self) -> bool:
        """Enough has been seen of the source to judge it."""
        return self._span() >= MIN_SPAN and (self.kind == "audio" or self.size is not None)

    def _media_span(self) -> float:
        # Rates are measured against the source's own clock (RTP timestamps), not arrival
        # times: a starved machine or a congested path delivers frames in bursts, which
        # would look like a source sending over its frame rate and make every slot that
        # forwards it re-encode it (the costliest thing the server does) for nothing.
        if len(self._window) < 2:
            return 0.0
        span = self._window[-1][2] - self._window[0][2]
        return span if span > 0 else self._span()

    def bps(self) -> float:
        span = self._media_span()
        # The first entry's bytes arrived at the window's start: count what came after.
        return (self._window_bytes - self._window[0][1]) * 8 / span if span else 0.0

    def fps(self) -> float:
        span = self._media_span()
        return (len(self._window) - 1) / span if span else 0.0

    def fits(self, profile: Profile, strict: bool = False) -> bool:
        """Whether forwarding this source keeps within `profile`'s limits (`strict`: with
        no slack for the bitrate)."""
        if self.kind == "audio":
            return self.bps() <= profile.audio_bps * AUDIO_BPS_SLACK
        slack = codecs.ENCODE_SHARE if strict else VIDEO_BPS_SLACK
        if self.bps() > profile.video_max_bps * slack:
            return False
        if self.fps() > profile.fps * FPS_SLACK:
            return False
        if self.size is not None:
            # Either orientation; a 4:3 camera may fill a 16:9 profile's width.
            width, height = self.size
            if max(width, height) > max(profile.width, profile.height) * SIZE_SLACK:
                return False
            if width * height > profile.width * profile.height * AREA_SLACK:
                return False
        return True

    def describe(self) -> str:
        size = "x".join(map(str, self.size)) if self.size else "?"
        return f"{self.bps() / 1000:.0f} kbps, {self.fps():.1f} fps, {size}"

    # ------------------------------------------------------------------ feedback to the source

    def request_keyframe(self) -> None:
        """Ask the source for a keyframe (a PLI), not more often than KEYFRAME_REQUEST_GAP."""
        if self.kind != "video":
            return
        now = time.monotonic()
        if now - self._keyframe_asked_at < KEYFRAME_REQUEST_GAP:
            return
        self._keyframe_asked_at = now
        self.keyframes_requested += 1
        codecs.request_keyframe(self.receiver)

    def send_cap(self) -> int | None:
        """The bitrate the participant is asked to send at most (video), or None."""
        return self.send_cap_bps

    def set_send_cap(self, bps: int | None) -> None:
        """Ask the participant to send at most `bps` (video: REMB), now and from now on."""
        if bps == self.send_cap_bps:
            return
        self.send_cap_bps = bps
        if self.kind == "video" and bps is not None:
            codecs.send_remb(self.receiver, bps)

    # ------------------------------------------------------------------ decoded frames

    async def _run(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, Frame):
                    continue  # decoded tracks give frames; a packet here is not ours to pass
                if isinstance(frame, VideoFrame):
                    # One clock for every source, so a slot switching sources stays monotonic.
                    frame.pts = int((time.monotonic() - _CLOCK_ORIGIN) * VIDEO_CLOCK_RATE)
                    frame.time_base = VIDEO_TIME_BASE
                if self.muted:
                    continue
                takers = [s for s in tuple(self.slots) if s.transcoding and s.takes_media]
                for index, slot in enumerate(takers):
                    # Each encoder gets a picture of its own: encoders run in threads at
                    # once, and a slot restamps and may mark (keyframe) what it encodes.
                    mine = frame if index == 0 or not isinstance(frame, VideoFrame) \
                        else copy_picture(frame)
                    slot.offer_frame(self, mine)
        except MediaStreamError:
            logger.debug("feed %s ended", self.label)
        finally:
            for slot in tuple(self.slots):
                self.detach(slot)

    async def stop(self) -> None:
        """Stop reading and release the slots."""
        self.tap.feed = None
        if self.track is not None:
            self.track.stop()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        for slot in tuple(self.slots):
            self.detach(slot)

