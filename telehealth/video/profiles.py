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


# What the pre-call check recommends, from the slower direction of the measured link.
# Opus at the low profile's 16 kbps, plus RTP/UDP/IP headers at 50 packets a second.
AUDIO_ONLY_BPS = 2 * PROFILES["low"].audio_bps
# Beyond these round trips people talk over each other: video first, then audio, is not worth it.
MAX_VIDEO_RTT_MS = 800
MAX_AUDIO_RTT_MS = 1500
VERDICTS = ("standard", "low", "audio", "written")


def needed_bps(profile: Profile) -> int:
    """Bits per second one direction must carry for this profile at its full rate."""
    return profile.video_max_bps + profile.audio_bps


def recommend(rtt_ms: float, down_bps: float, up_bps: float, camera: bool) -> str:
    """The call a measured link supports: "standard", "low" (video), "audio" or "written"."""
    slowest = min(down_bps, up_bps)
    if camera and rtt_ms <= MAX_VIDEO_RTT_MS:
        for name in ("standard", "low"):
            if slowest >= needed_bps(PROFILES[name]):
                return name
    if rtt_ms <= MAX_AUDIO_RTT_MS and slowest >= AUDIO_ONLY_BPS:
        return "audio"
    return "written"
