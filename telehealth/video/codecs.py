"""The one seam where the server's encoders are told a profile's bitrate and size.

aiortc has no bitrate API: its VP8 encoder clamps the target to 250-1500 kbps and its
Opus encoder is fixed at 96 kbps. We hand each sender an encoder built for the profile
before its first frame; the sender keeps it for the life of the connection.
"""

from __future__ import annotations

from aiortc import RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from av import VideoFrame
from av.frame import Frame

from telehealth.video.profiles import Profile

# Name-mangled private attribute of RTCRtpSender that holds its encoder (aiortc 1.16).
_SENDER_ENCODER_ATTR = "_RTCRtpSender__encoder"
# Name-mangled storage behind Vp8Encoder.target_bitrate (also used for its buffer size).
_VP8_BITRATE_ATTR = "_Vp8Encoder__target_bitrate"


def scaled_size(width: int, height: int, profile: Profile) -> tuple[int, int]:
    """Fit (width, height) inside the profile's box, keeping the aspect ratio, even sizes."""
    scale = min(1.0, profile.width / width, profile.height / height)
    if scale >= 1.0:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class ProfileVp8Encoder(Vp8Encoder):
    """VP8 encoder that keeps to the profile's bitrate range and picture size."""

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile
        self.target_bitrate = profile.video_max_bps
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
        clamped = max(self.profile.video_min_bps, min(bitrate, self.profile.video_max_bps))
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
        if self._budget_bytes < 0 and not force_keyframe:
            return [], 0
        width, height = scaled_size(frame.width, frame.height, self.profile)
        if (width, height) != (frame.width, frame.height):
            pts, time_base = frame.pts, frame.time_base
            frame = frame.reformat(width=width, height=height, format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
        payloads, timestamp = super().encode(frame, force_keyframe)
        self._budget_bytes -= sum(len(p) for p in payloads)
        return payloads, timestamp


class ProfileOpusEncoder(OpusEncoder):
    """Opus encoder at the profile's bitrate instead of aiortc's fixed 96 kbps."""

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.codec.bit_rate = profile.audio_bps


def make_encoder(kind: str, profile: Profile) -> ProfileVp8Encoder | ProfileOpusEncoder:
    """Build the encoder for a sender of this kind ("audio" or "video")."""
    return ProfileOpusEncoder(profile) if kind == "audio" else ProfileVp8Encoder(profile)


def install_encoder(sender: RTCRtpSender, encoder: object) -> None:
    """Give a sender its encoder before it starts; fails loudly if aiortc changed."""
    if not hasattr(sender, _SENDER_ENCODER_ATTR):
        raise RuntimeError("aiortc's RTCRtpSender no longer has the expected encoder slot")
    setattr(sender, _SENDER_ENCODER_ATTR, encoder)


def installed_encoder(sender: RTCRtpSender) -> object:
    """The encoder a sender currently holds (None before its first frame)."""
    return getattr(sender, _SENDER_ENCODER_ATTR)
