"""The seams into aiortc's private parts, each checked so an aiortc upgrade fails loudly.

- Encoders: aiortc has no bitrate API: its VP8 encoder clamps the target to 250-1500 kbps
  and its Opus encoder is fixed at 96 kbps. We hand each sender an encoder built for the
  profile before its first frame; the sender keeps it for the life of the connection (it
  only encodes while a slot re-encodes; forwarded frames are only packetized).
- Receiver tap: forwarding needs the encoded frames a receiver reassembles, which aiortc
  puts on its decoder thread's queue; the tap takes that queue's place (aiortc #449).
- Audio levels: a conference ranks its speakers from the level each browser writes into its
  audio packets (RFC 6464 "ssrc-audio-level", which aiortc negotiates for audio and parses
  into `packet.extensions.audio_level`); we read it as the receiver is handed each packet.
- Keyframe requests and bitrate feedback: a browser's picture-loss request on a forwarded
  stream must reach the participant who encodes it, and the bitrate we ask a participant
  to send (REMB) must respect what every receiver of theirs can take.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from av import VideoFrame
from av.frame import Frame

from telehealth.video.profiles import Profile

# Name-mangled private attribute of RTCRtpSender that holds its encoder (aiortc 1.16).
_SENDER_ENCODER_ATTR = "_RTCRtpSender__encoder"
# Name-mangled storage behind Vp8Encoder.target_bitrate (also used for its buffer size).
_VP8_BITRATE_ATTR = "_Vp8Encoder__target_bitrate"
# The receiver's queue to its decoder thread, read by the thread started in receive().
_RECEIVER_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"
_RECEIVER_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"
# SSRC -> when last heard; getSynchronizationSources() gives only the last 10 s of it.
_RECEIVER_ACTIVE_SSRC_ATTR = "_RTCRtpReceiver__active_ssrc"
# A video receiver's delay-based bandwidth estimator (the REMB it sends), None for audio.
_RECEIVER_ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"

# libvpx wanders around its target; aim below the profile's ceiling so the average keeps
# under it (the byte budget below catches what still overshoots).
VP8_TARGET_HEADROOM = 0.9

logger = logging.getLogger(__name__)


def scaled_size(width: int, height: int, profile: Profile) -> tuple[int, int]:
    """Fit (width, height) inside the profile's box, keeping the aspect ratio, even sizes."""
    scale = min(1.0, profile.width / width, profile.height / height)
    if scale >= 1.0:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


# Over any window of this many seconds, a receiver gets no more than its profile's video
# ceiling from one slot, whether the slot forwards or re-encodes. Packetizing adds a few
# bytes a packet (under 1%): forwarding keeps under FORWARD_SHARE of the ceiling; our own
# encoder, which can aim, under ENCODE_SHARE (and a source must measure under it to be
# forwarded again).
CEILING_WINDOW_SECONDS = 4.0
FORWARD_SHARE = 0.99
ENCODE_SHARE = 0.95


class ByteWindow:
    """Bytes a slot sent in the last CEILING_WINDOW_SECONDS, against a ceiling.

    Shared by a slot's forwarding and its encoder, so that switching between the two never
    adds their bursts up.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # The encoder runs in aiortc's executor threads, forwarding on the engine's loop.
        self._lock = threading.Lock()
        self._sent: collections.deque[tuple[float, int]] = collections.deque()
        self._total = 0

    def used(self) -> int:
        """Bytes sent within the window ending now."""
        start = self.clock() - CEILING_WINDOW_SECONDS
        with self._lock:
            while self._sent and self._sent[0][0] <= start:
                self._total -= self._sent.popleft()[1]
            return self._total

    def room(self, ceiling_bps: int, share: float) -> float:
        """Bytes that may still be sent now without the window passing `share` of
        `ceiling_bps`."""
        return ceiling_bps * share * CEILING_WINDOW_SECONDS / 8 - self.used()

    def add(self, size: int) -> None:
        """Count `size` bytes sent now."""
        with self._lock:
            self._sent.append((self.clock(), size))
            self._total += size


class ProfileVp8Encoder(Vp8Encoder):
    """VP8 encoder that keeps to the profile's bitrate range and picture size."""

    def __init__(self, profile: Profile, window: ByteWindow | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.target_bitrate = profile.video_max_bps
        # The slot's window (see ByteWindow): a frame is skipped rather than pass it.
        self.window = window
        # The next delta frame is expected to be at most as large as the largest lately,
        # the next keyframe as large as the last one.
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._keyframe_size = 0
        self._keyframe_owed = False
        # A byte budget that fills at the profile's ceiling; a frame may overdraw it, and
        # frames are skipped until the debt is paid (strict on average, over any span).
        self._budget_bytes = 0.0
        self._budget_at: float | None = None

    def set_profile(self, profile: Profile) -> None:
        """Switch to another profile; the next frame is encoded with its limits."""
        self.profile = profile
        self.target_bitrate = profile.video_max_bps

    @property
    def target_bitrate(self) -> int:
        return int(getattr(self, _VP8_BITRATE_ATTR))

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        # Also called with the receiver's REMB estimate; stay inside the profile's range.
        ceiling = int(self.profile.video_max_bps * VP8_TARGET_HEADROOM)
        clamped = max(self.profile.video_min_bps, min(bitrate, ceiling))
        setattr(self, _VP8_BITRATE_ATTR, clamped)

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        assert isinstance(frame, VideoFrame)
        # libvpx overshoots its target on busy pictures (its quantizer is capped), so the
        # profile's ceiling is also kept by skipping frames while the budget is overdrawn.
        now = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base \
            else 0.0
        if self._budget_at is not None:
            earned = (now - self._budget_at) * self.profile.video_max_bps / 8
            self._budget_bytes = min(self.profile.video_max_bps / 8,
                                     self._budget_bytes + max(0.0, earned))
        self._budget_at = now
        force_keyframe = force_keyframe or self._keyframe_owed
        if self._budget_bytes < 0 and not force_keyframe:
            return [], 0
        keyframe = force_keyframe or self.codec is None
        if self.window is not None and \
                self.window.room(self.profile.video_max_bps, ENCODE_SHARE) \
                < self._expected_size(keyframe):
            # A frame as large as the largest of its kind would pass the ceiling: skip it;
            # a keyframe asked for is made with the next frame that fits.
            self._keyframe_owed = keyframe
            return [], 0
        self._keyframe_owed = False
        width, height = scaled_size(frame.width, frame.height, self.profile)
        if (width, height) != (frame.width, frame.height):
            pts, time_base = frame.pts, frame.time_base
            frame = frame.reformat(width=width, height=height, format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
        payloads, timestamp = super().encode(frame, force_keyframe)
        size = sum(len(p) for p in payloads)
        self._budget_bytes -= size
        if keyframe:
            self._keyframe_size = size
        else:
            self._recent.append((time.monotonic(), size))
        if self.window is not None:
            self.window.add(size)
        return payloads, timestamp


    def _expected_size(self, keyframe: bool) -> int:
        if keyframe:
            return self._keyframe_size
        start = time.monotonic() - CEILING_WINDOW_SECONDS
        while self._recent and self._recent[0][0] < start:
            self._recent.popleft()
        return max((size for _t, size in self._recent), default=0)


class ProfileOpusEncoder(OpusEncoder):
    """Opus encoder at the profile's bitrate instead of aiortc's fixed 96 kbps."""

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.codec.bit_rate = profile.audio_bps


def make_encoder(kind: str, profile: Profile) -> ProfileVp8Encoder | ProfileOpusEncoder:
    """Build the encoder for a sender of this kind ("audio" or "video") that keeps to the
    profile over every window, as the server asks its senders to."""
    return ProfileOpusEncoder(profile) if kind == "audio" \
        else ProfileVp8Encoder(profile, ByteWindow())


def install_encoder(sender: RTCRtpSender, encoder: object) -> None:
    """Give a sender its encoder before it starts; fails loudly if aiortc changed."""
    if not hasattr(sender, _SENDER_ENCODER_ATTR):
        raise RuntimeError("aiortc's RTCRtpSender no longer has the expected encoder slot")
    setattr(sender, _SENDER_ENCODER_ATTR, encoder)


def installed_encoder(sender: RTCRtpSender) -> object:
    """The encoder a sender currently holds (None before its first frame)."""
    return getattr(sender, _SENDER_ENCODER_ATTR)


def install_receiver_tap(receiver: RTCRtpReceiver, tap: queue.Queue[Any]) -> None:
    """Put `tap` where the receiver queues encoded frames for its decoder thread.

    Must happen before the receiver starts (setRemoteDescription), since the decoder
    thread is handed the queue then.
    """
    if not isinstance(getattr(receiver, _RECEIVER_QUEUE_ATTR, None), queue.Queue):
        raise RuntimeError("aiortc's RTCRtpReceiver no longer has the expected decoder queue")
    setattr(receiver, _RECEIVER_QUEUE_ATTR, tap)


def on_audio_level(receiver: RTCRtpReceiver,
                   callback: Callable[[bool, int], None]) -> None:
    """Call `callback(voice, dbov)` with the audio level of every RTP packet the receiver is
    handed that carries one (on the engine's loop, before the receiver's own handling)."""
    handle = receiver._handle_rtp_packet
    if not callable(handle):
        raise RuntimeError("aiortc's RTCRtpReceiver no longer has _handle_rtp_packet")

    async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            callback(bool(level[0]), int(level[1]))
        await handle(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> Callable[[], None]:
    """Also call `callback` when the remote end asks this sender for a keyframe.

    Returns the sender's own handler (it makes the sender's encoder emit a keyframe).
    """
    own = sender._send_keyframe
    if not callable(own):
        raise RuntimeError("aiortc's RTCRtpSender no longer has _send_keyframe")

    def both() -> None:
        own()
        callback()

    sender._send_keyframe = both  # type: ignore[method-assign]
    return own


def estimate_bitrate(receiver: RTCRtpReceiver, on: bool) -> None:
    """Run (or stop) a video receiver's bandwidth estimator.

    It costs more than anything else per video packet received (aiortc's rate counter
    steps through every millisecond between packets), and only matters while somebody
    watches that video: a conference stops it for participants nobody watches (they keep
    the last bitrate we asked for) and starts it afresh when they are watched again.
    """
    if not hasattr(receiver, _RECEIVER_ESTIMATOR_ATTR):
        raise RuntimeError("aiortc's RTCRtpReceiver no longer has its bitrate estimator")
    running = getattr(receiver, _RECEIVER_ESTIMATOR_ATTR) is not None
    if on and not running:
        setattr(receiver, _RECEIVER_ESTIMATOR_ATTR, RemoteBitrateEstimator())
    elif running and not on:
        setattr(receiver, _RECEIVER_ESTIMATOR_ATTR, None)


def cap_remb(receiver: RTCRtpReceiver, cap: Callable[[], int | None]) -> None:
    """Keep the bitrate the receiver asks its sender for (REMB) at or under `cap()`."""
    send = receiver._send_rtcp

    async def capped(packet: Any) -> None:
        limit = cap()
        if limit is not None and isinstance(packet, RtcpPsfbPacket) \
                and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                pass
            else:
                if bitrate > limit:
                    packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=packet.ssrc,
                                            media_ssrc=packet.media_ssrc,
                                            fci=pack_remb_fci(limit, ssrcs))
        await send(packet)

    receiver._send_rtcp = capped  # type: ignore[method-assign]


def media_ssrcs(receiver: RTCRtpReceiver) -> list[int]:
    """The SSRCs the receiver heard media on lately (retransmission streams left out); if
    none in the last 10 s, those it heard last: a conference participant whose video is
    paused (see engine.VIDEO_PAUSE_AFTER) must still get our keyframe request and REMB."""
    rtx = getattr(receiver, _RECEIVER_RTX_ATTR, {})
    recent = [s.source for s in receiver.getSynchronizationSources() if s.source not in rtx]
    if recent:
        return recent
    heard: dict[int, Any] = getattr(receiver, _RECEIVER_ACTIVE_SSRC_ATTR, {})
    return [ssrc for ssrc, _at in sorted(heard.items(), key=lambda pair: pair[1],
                                          reverse=True) if ssrc not in rtx]


def request_keyframe(receiver: RTCRtpReceiver) -> None:
    """Send the receiver's sender a picture loss indication (on the engine's loop)."""
    for ssrc in media_ssrcs(receiver)[:1]:
        asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))


def send_remb(receiver: RTCRtpReceiver, bitrate: int) -> None:
    """Tell the receiver's sender now to keep under `bitrate` (on the engine's loop)."""
    rtcp_ssrc = getattr(receiver, _RECEIVER_RTCP_SSRC_ATTR, None)
    sources = media_ssrcs(receiver)
    if rtcp_ssrc is None or not sources:
        return  # not started yet; the capped estimate does it once media flows
    packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                            fci=pack_remb_fci(bitrate, sources))
    asyncio.ensure_future(receiver._send_rtcp(packet))
