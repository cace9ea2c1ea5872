"""Tracks inside the media engine: one feed per received track, one slot per sent track."""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import time

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from av.frame import Frame
from av.packet import Packet

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
# Frames waiting in a slot: enough to ride out a slow encode, never a growing backlog.
SLOT_DEPTH = {"audio": 5, "video": 1}
_CLOCK_ORIGIN = time.monotonic()


class SlotTrack(MediaStreamTrack):
    """What the server sends on one transceiver: the frames of whoever fills the slot.

    The slot outlives the participants that fill it, so a sender never sees its track
    end (an ended track stops aiortc's sender for good). Its queue is bounded: when the
    encoder falls behind, the oldest frames are dropped.
    """

    def __init__(self, kind: str, fps: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.fps = fps
        self.paused = False
        self.source: Feed | None = None
        self._queue: collections.deque[Frame | Packet] = collections.deque(maxlen=SLOT_DEPTH[kind])
        self._wake = asyncio.Event()
        self._last_sent = time.monotonic()
        self._tokens = 1.0

    def push(self, frame: Frame | Packet) -> None:
        """Offer a frame from the feed; video beyond the slot's frame rate is skipped."""
        if self.paused:
            return
        if self.kind == "video" and self.fps:
            # A token bucket, not a minimum gap: frames from the jitter buffer come in
            # uneven bursts, and a gap rule would drop many of a source at exactly `fps`.
            now = time.monotonic()
            self._tokens = min(2.0, self._tokens + (now - self._last_sent) * self.fps)
            self._last_sent = now
            if self._tokens < 1.0:
                return
            self._tokens -= 1.0
        self._queue.append(frame)
        self._wake.set()

    def clear(self) -> None:
        """Forget queued frames (the slot's participant left)."""
        self._queue.clear()

    async def recv(self) -> Frame | Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._queue:
                return self._queue.popleft()
            self._wake.clear()
            await self._wake.wait()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._wake.set()


class Feed:
    """Reads one track a participant sends and hands every frame to the slots it fills.

    The feed always reads, even with no slot attached, so aiortc's unbounded receive
    queue never grows.
    """

    def __init__(self, track: MediaStreamTrack, label: str) -> None:
        self.track = track
        self.kind = track.kind
        self.label = label
        self.slots: set[SlotTrack] = set()
        self.frames = 0
        self.last_frame_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reading on the running loop."""
        self.task = asyncio.ensure_future(self._run())

    def attach(self, slot: SlotTrack) -> None:
        """Send this feed's frames into a slot (detaching it from its previous feed)."""
        if slot.source is not None and slot.source is not self:
            slot.source.detach(slot)
        slot.source = self
        self.slots.add(slot)

    def detach(self, slot: SlotTrack) -> None:
        """Stop sending into a slot."""
        self.slots.discard(slot)
        if slot.source is self:
            slot.source = None
            slot.clear()

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.frames += 1
                self.last_frame_at = time.monotonic()
                if isinstance(frame, VideoFrame):
                    # One clock for every source, so a slot switching sources stays monotonic.
                    frame.pts = int((self.last_frame_at - _CLOCK_ORIGIN) * VIDEO_CLOCK_RATE)
                    frame.time_base = VIDEO_TIME_BASE
                for slot in tuple(self.slots):
                    slot.push(frame)
        except MediaStreamError:
            logger.debug("feed %s ended", self.label)
        finally:
            for slot in tuple(self.slots):
                self.detach(slot)

    async def stop(self) -> None:
        """Stop reading and release the slots."""
        self.track.stop()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        for slot in tuple(self.slots):
            self.detach(slot)
