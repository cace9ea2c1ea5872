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


# Bytes each RTP packet costs on the wire beyond its payload: RTP header (12), header
# extensions (about 8), SRTP tag (10), UDP (8), IPv4 (20).
PACKET_OVERHEAD_BYTES = 58
AUDIO_PACKETS_PER_SECOND = 50  # Opus in 20 ms frames


def audio_wire_bps(profile: Profile) -> int:
    """What one audio stream at this profile costs on the wire, headers included."""
    return profile.audio_bps + AUDIO_PACKETS_PER_SECOND * PACKET_OVERHEAD_BYTES * 8


def conference_video_bps(profile: Profile, audio_streams: int) -> int:
    """The video a conference participant may send when receivers on `profile` also take
    the audio of `audio_streams` speakers: the profile budgets one other party's audio and
    video, so the extra speakers' audio comes out of the video (a `low` receiver hearing
    three speakers stays within its 256 kbps link)."""
    extra = max(0, audio_streams - 1) * audio_wire_bps(profile)
    return max(profile.video_min_bps, profile.video_max_bps - extra)
