"""Quality profiles: how much the server sends to one participant, per stream."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Limits for the video and audio the server encodes for one participant."""

    name: str
    width: int
    height: int
    fps: int
    video_min_bps: int
    video_max_bps: int
    audio_bps: int


PROFILES: dict[str, Profile] = {
    # Fits a 256 kbps clinic link with one other party: video + audio + RTP overhead.
    "low": Profile("low", 320, 240, 15, 60_000, 200_000, 16_000),
    "standard": Profile("standard", 640, 360, 30, 150_000, 800_000, 32_000),
}
DEFAULT_PROFILE = "low"


def get_profile(name: str) -> Profile:
    """Return the named profile; unknown names raise KeyError."""
    return PROFILES[name]
