"""Test media for aiortc clients: solid-colour video and a tone, and checks on what arrives."""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import os
import time
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

# BT.601 YUV of recognisable colours: each participant paints its video in one of them.
COLOURS = {
    "red": (81, 90, 240),
    "green": (145, 54, 34),
    "blue": (41, 240, 110),
    "yellow": (210, 16, 146),
}


class ColourTrack(MediaStreamTrack):
    """A solid-colour video at a fixed frame rate, with a moving bar so frames differ."""

    kind = "video"

    def __init__(self, colour: str, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        self.yuv = COLOURS[colour]
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = VideoFrame(self.width, self.height, "yuv420p")
        y, u, v = self.yuv
        luma = bytearray([y]) * frame.planes[0].buffer_size
        # A small moving bar in the top rows: motion, as a camera would give.
        line = frame.planes[0].line_size
        bar = (self._count * 4) % (self.width - 8)
        for row in range(4):
            luma[row * line + bar:row * line + bar + 8] = bytes([255 - y]) * 8
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(bytes([u]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([v]) * frame.planes[2].buffer_size)
        frame.pts = self._count * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


class TexturedTrack(ColourTrack):
    """The solid colour with a scrolling band of grain: something an encoder must work for.

    A flat colour compresses to ~8 kbps and would hide what encoder settings do; grain of
    +-8 levels costs stock aiortc ~470 kbps at 320x240, like a busy camera picture.
    """

    def __init__(self, colour: str, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__(colour, width, height, fps)
        self._noise = bytes(120 + b % 16 for b in os.urandom(width * height))

    async def recv(self) -> VideoFrame:
        frame = await super().recv()
        luma = bytearray(bytes(frame.planes[0]))
        line, width = frame.planes[0].line_size, self.width
        shift = (self._count * 7) % width
        for row in range(self.height // 4, self.height * 3 // 4):  # a band across the middle
            noise = self._noise[row * width:(row + 1) * width]
            luma[row * line:row * line + width] = noise[shift:] + noise[:shift]
        frame.planes[0].update(bytes(luma))
        return frame


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone in 20 ms mono frames."""

    kind = "audio"

    def __init__(self, rate: int = 48000) -> None:
        super().__init__()
        self.rate = rate
        self.samples = rate // 50
        self._count = 0
        self._start: float | None = None
        one = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * n / rate))
                               for n in range(rate // 10)))
        self._cycle = one.tobytes()  # 100 ms, an integer number of 440 Hz periods

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count * self.samples / self.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = AudioFrame(format="s16", layout="mono", samples=self.samples)
        offset = (self._count % 5) * self.samples * 2
        frame.planes[0].update(self._cycle[offset:offset + self.samples * 2])
        frame.pts = self._count * self.samples
        frame.sample_rate = self.rate
        frame.time_base = fractions.Fraction(1, self.rate)
        self._count += 1
        return frame


def frame_colour(frame: VideoFrame) -> str:
    """The named colour closest to the middle of a decoded frame."""
    frame = frame.reformat(format="yuv420p")
    yp, up, vp = frame.planes
    row, col = frame.height * 3 // 4, frame.width // 2
    y = bytes(yp)[row * yp.line_size + col]
    u = bytes(up)[(row // 2) * up.line_size + col // 2]
    v = bytes(vp)[(row // 2) * vp.line_size + col // 2]
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in
                                             zip(COLOURS[name], (y, u, v), strict=True)))


def audio_peak(frame: AudioFrame) -> int:
    """Largest absolute sample in a decoded s16 frame."""
    samples = array.array("h", bytes(frame.planes[0])[: frame.samples * 2 *
                                                       len(frame.layout.channels)])
    return max((abs(s) for s in samples), default=0)


@dataclass
class Received:
    """What one client got on one mid."""

    kind: str
    frames: int = 0
    colours: dict[str, int] = field(default_factory=dict)
    loud_frames: int = 0
    first_at: float | None = None
    size: tuple[int, int] | None = None  # of the last video frame


async def consume(track: MediaStreamTrack, received: Received) -> None:
    """Read a remote track until it ends, noting colours (video) or loudness (audio)."""
    try:
        while True:
            frame = await track.recv()
            received.frames += 1
            if received.first_at is None:
                received.first_at = time.monotonic()
            if isinstance(frame, VideoFrame):
                received.size = (frame.width, frame.height)
                if received.frames % 5 == 1:
                    colour = frame_colour(frame)
                    received.colours[colour] = received.colours.get(colour, 0) + 1
            elif isinstance(frame, AudioFrame) and audio_peak(frame) > 1000:
                received.loud_frames += 1
    except MediaStreamError:
        pass


async def close_peer(pc: RTCPeerConnection | None, tracks: list[MediaStreamTrack],
                     tasks: list[asyncio.Task[None]]) -> None:
    """Close a client's peer connection, stop what it sends and what reads what it receives."""
    if pc is not None:
        await pc.close()
    for track in tracks:
        track.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
