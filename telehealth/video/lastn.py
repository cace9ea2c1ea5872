"""The conference media plan: who hears whom and who sees whom, from audio levels alone.

A conference of 30 sites cannot forward every stream to everyone. Browsers already put the
level of each audio packet in an RTP header extension (RFC 6464, "ssrc-audio-level"), so the
server can rank speakers without decoding any audio. From those levels this module keeps a
smoothed loudness per participant and decides, for every receiver:

- audio: the (up to) three loudest current speakers;
- video: the active speaker plus the last N recent speakers (N default 4); a receiver on the
  `low` profile or a weak link gets the active speaker's video only, or audio only;
- a pinned participant (one per room: whoever shares their screen) comes first in every
  receiver's video, whether they speak or not (a `low` receiver gets only them).

The active speaker changes only when someone else has been clearly louder (a margin) for a
short while (a dwell), so two people talking over each other do not make the picture flap;
a participant who starts speaking into silence still becomes active well within a second.

Pure logic with an injected clock (`now` in seconds): no aiortc, no asyncio, no Flask; the
engine feeds it each packet's level (`record`) and asks it for plans on a timer
(`tick`, `plans_for`; see engine.py).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

ParticipantId = str  # the engine's participant ids

# RFC 8285 profiles of the RTP header extension block.
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

SILENCE_DBOV = 127  # RFC 6464: 127 means -127 dBov, i.e. digital silence


@dataclass(frozen=True)
class AudioLevel:
    """One packet's level: `dbov` is how far below full scale (0 loudest .. 127 silent)."""

    voice: bool
    dbov: int

    @property
    def loudness(self) -> int:
        """0 (silence) .. 127 (full scale): larger is louder, convenient for ranking."""
        return SILENCE_DBOV - self.dbov


def parse_audio_level(value: bytes) -> AudioLevel:
    """Decode the ssrc-audio-level extension's value (RFC 6464 §3): V bit, then 7-bit -dBov."""
    if not value:
        raise ValueError("empty audio level extension")
    first = value[0]
    return AudioLevel(voice=bool(first & 0x80), dbov=first & 0x7F)


def find_extension(profile: int, block: bytes, extension_id: int) -> bytes | None:
    """The value of one extension in an RTP header extension block (RFC 8285), or None.

    `profile` is the 16-bit "defined by profile" field; `block` the extension data after the
    length word. Malformed blocks give None rather than an exception: a bad packet must not
    stop the plan.
    """
    one_byte = profile == ONE_BYTE_PROFILE
    if not one_byte and profile & TWO_BYTE_PROFILE_MASK != TWO_BYTE_PROFILE:
        return None
    pos = 0
    while pos < len(block):
        if block[pos] == 0:  # padding
            pos += 1
            continue
        if one_byte:
            ext_id, length = block[pos] >> 4, (block[pos] & 0x0F) + 1
            if ext_id == 15:  # reserved: stop parsing (RFC 8285 §4.2)
                return None
            pos += 1
        else:
            if pos + 1 >= len(block):
                return None
            ext_id, length = block[pos], block[pos + 1]
            pos += 2
        if pos + length > len(block):
            return None
        if ext_id == extension_id:
            return block[pos:pos + length]
        pos += length
    return None


class ReceiverQuality(enum.StrEnum):
    FULL = "full"  # active speaker + last-N
    LOW = "low"  # the `low` profile or a weak link: the active speaker's video only
    AUDIO_ONLY = "audio_only"


@dataclass(frozen=True)
class MediaPlan:
    """What one receiver gets: audio sources and video sources, in priority order."""

    audio: tuple[ParticipantId, ...]
    video: tuple[ParticipantId, ...]


@dataclass(frozen=True)
class SelectorSettings:
    last_n: int = 4
    max_audio: int = 3
    # Smoothing time constant (s): long enough to ride over syllables, short enough to react.
    smoothing_s: float = 0.2
    # A speaker must be at least this loud (0..127) to count: -60 dBov is room noise.
    speech_threshold: float = 127 - 60
    # To take over from a still-speaking active speaker: louder by this margin ...
    switch_margin: float = 6.0
    # ... continuously for this long.
    switch_dwell_s: float = 0.3
    # Into silence (the active speaker has stopped) there is nobody to flap with: a voice
    # held this long takes the floor, so a new speaker is on every screen within a second
    # even after the keyframe and the network.
    silence_dwell_s: float = 0.15
    # Without packets (DTX, muted) the level decays as if silent. Conference participants
    # are asked for Opus DTX: a silent one sends a comfort-noise packet every 400 ms.
    stale_after_s: float = 0.1
    # Video lanes not yet earned by speakers go to participants in joining order (the hub,
    # who usually joins first, is seen before anyone has spoken).
    fill_from_roster: bool = False


@dataclass
class _Track:
    level: float = 0.0
    updated_at: float = -math.inf
    louder_since: float | None = None  # when it began beating the active speaker


@dataclass
class SpeakerSelector:
    """Smoothed levels per participant, the active speaker (with hysteresis) and last-N."""

    settings: SelectorSettings = field(default_factory=SelectorSettings)
    active: ParticipantId | None = None
    _tracks: dict[ParticipantId, _Track] = field(default_factory=dict)
    _recent: list[ParticipantId] = field(default_factory=list)  # most recent speaker first
    # Muted by a moderator: their levels are ignored and nobody is sent their audio.
    muted: set[ParticipantId] = field(default_factory=set)
    # Shown to everyone first, speaking or not (a shared screen): one per room.
    pinned: ParticipantId | None = None

    def add(self, participant: ParticipantId) -> None:
        self._tracks.setdefault(participant, _Track())

    def remove(self, participant: ParticipantId) -> None:
        self._tracks.pop(participant, None)
        self.muted.discard(participant)
        if self.pinned == participant:
            self.pinned = None
        if participant in self._recent:
            self._recent.remove(participant)
        if self.active == participant:
            self.active = self._recent[0] if self._recent else None

    def _decayed(self, track: _Track, now: float) -> float:
        idle = now - track.updated_at - self.settings.stale_after_s
        if idle <= 0:
            return track.level
        return track.level * math.exp(-idle / self.settings.smoothing_s)

    def level(self, participant: ParticipantId, now: float) -> float:
        track = self._tracks.get(participant)
        return self._decayed(track, now) if track is not None else 0.0

    def set_muted(self, participant: ParticipantId, muted: bool) -> None:
        """A muted participant is silent to the plan at once (and stays so until unmuted)."""
        if muted:
            self.muted.add(participant)
            track = self._tracks.get(participant)
            if track is not None:
                track.level, track.louder_since = 0.0, None
        else:
            self.muted.discard(participant)

    def set_pinned(self, participant: ParticipantId | None) -> None:
        """Pin one participant's video first for every receiver (None: unpin). A new pin
        replaces the old one; someone not in the room cannot be pinned."""
        self.pinned = participant if participant in self._tracks else None

    def on_audio_level(self, participant: ParticipantId, level: AudioLevel, now: float) -> None:
        """Feed one packet's level (about every 20 ms per speaking participant)."""
        self.add(participant)
        self.record(participant, level, now)
        self._update_active(now)

    def record(self, participant: ParticipantId, level: AudioLevel, now: float) -> None:
        """Feed one packet's level without re-ranking: a room of 50 sends 2,500 levels a
        second, so the engine ranks on its timer (`tick`) instead of on every packet."""
        track = self._tracks.get(participant)
        if track is None or participant in self.muted:
            return  # not (or no longer) in the room, or muted
        previous = self._decayed(track, now)
        # A packet weighs for the audio it carries, not for the gap before it: after a DTX
        # or loss gap (already decayed as silence above) one loud packet is one frame of
        # sound, not 400 ms of it (a cough after silence must not take the floor at once).
        dt = min(max(0.0, now - track.updated_at), self.settings.stale_after_s) \
            if track.updated_at > -math.inf else 0.02
        alpha = 1 - math.exp(-dt / self.settings.smoothing_s)
        track.level = previous + alpha * (level.loudness - previous)
        track.updated_at = now

    def tick(self, now: float) -> None:
        """Re-evaluate without a packet (e.g. on a timer), so silence hands over the floor."""
        self._update_active(now)

    def _update_active(self, now: float) -> None:
        s = self.settings
        active_level = self.level(self.active, now) if self.active is not None else 0.0
        active_speaking = active_level >= s.speech_threshold
        best: ParticipantId | None = None
        best_level = -1.0
        for participant, track in self._tracks.items():
            if participant == self.active:
                continue
            current = self._decayed(track, now)
            beats = current >= s.speech_threshold and (
                not active_speaking or current >= active_level + s.switch_margin)
            if not beats:
                track.louder_since = None
                continue
            if track.louder_since is None:
                track.louder_since = now
            dwell = s.switch_dwell_s if active_speaking else s.silence_dwell_s
            if now - track.louder_since >= dwell and current > best_level:
                best, best_level = participant, current
        if best is not None:
            self._make_active(best)

    def _make_active(self, participant: ParticipantId) -> None:
        self.active = participant
        if participant in self._recent:
            self._recent.remove(participant)
        self._recent.insert(0, participant)
        for track in self._tracks.values():
            track.louder_since = None

    def loudest(self, now: float, limit: int) -> list[ParticipantId]:
        """Up to `limit` participants above the speech threshold, loudest first."""
        levels = ((self._decayed(t, now), p) for p, t in self._tracks.items()
                  if p not in self.muted)
        speaking = [(level, p) for level, p in levels
                    if level >= self.settings.speech_threshold]
        speaking.sort(key=lambda pair: -pair[0])
        return [p for _level, p in speaking[:limit]]

    def speaking(self, now: float) -> set[ParticipantId]:
        """Everyone whose voice is above the speech threshold now (muted people are not)."""
        threshold = self.settings.speech_threshold
        return {p for p, t in self._tracks.items()
                if p not in self.muted and self._decayed(t, now) >= threshold}

    def plan_for(self, receiver: ParticipantId, quality: ReceiverQuality,
                 now: float) -> MediaPlan:
        """The audio and video one receiver gets now; never their own."""
        return self.plans_for({receiver: quality}, now)[receiver]

    def plans_for(self, receivers: dict[ParticipantId, ReceiverQuality],
                  now: float) -> dict[ParticipantId, MediaPlan]:
        """`plan_for` for many receivers at once (the ranking is done once for the room)."""
        s = self.settings
        loudest = self.loudest(now, s.max_audio + 1)
        active = self.active if self.active not in self.muted else None
        recent = self._recent[:s.last_n + 1]
        if s.fill_from_roster and len(recent) < s.last_n + 1:
            recent += [p for p in self._tracks if p not in recent][:s.last_n + 1 - len(recent)]
        pinned = self.pinned if self.pinned in self._tracks else None
        plans = {}
        for receiver, quality in receivers.items():
            audio = [p for p in loudest if p != receiver][:s.max_audio]
            if active is not None and active != receiver and active not in audio:
                audio = [active, *audio][:s.max_audio]
            # The receiver's own picture is never sent back: the previous speaker stands in.
            speakers = [p for p in recent if p != receiver]
            if pinned is not None and pinned != receiver:
                # The shared screen takes the first lane; last-N fills the rest.
                speakers = [pinned, *(p for p in speakers if p != pinned)]
            count = {ReceiverQuality.AUDIO_ONLY: 0, ReceiverQuality.LOW: 1}.get(quality,
                                                                                s.last_n)
            plans[receiver] = MediaPlan(tuple(audio), tuple(speakers[:count]))
        return plans


def quality_for(profile_name: str, weak_link: bool, audio_only: bool) -> ReceiverQuality:
    """A receiver's quality from its profile and what its link reports."""
    if audio_only:
        return ReceiverQuality.AUDIO_ONLY
    if profile_name == "low" or weak_link:
        return ReceiverQuality.LOW
    return ReceiverQuality.FULL
