"""The media engine: one asyncio loop in its own thread owns every RTCPeerConnection.

Each participant holds one peer connection to the server. The server is always the
offerer: a participant's connection is created with one receiving audio+video pair and
one sending pair ("slot") for every other participant a room can hold, so people joining
and leaving only fill and empty slots and never need renegotiation. A slot's mid tells the
browser whose picture it carries (see `layout`).

Media is forwarded, not re-encoded (see tracks.py): so that what a participant sends fits
every receiver, each participant is asked to send within the lowest profile among
themselves and those who receive their video (SDP limits in the offer, REMB, and the
`on_send_limit` callback for the page to set its encoder); a slot re-encodes only a source
that does not keep to it.

A room opened with `open_conference` is run differently, for up to its plan's
`max_participants`: each connection gets `last_n` video and `audio_speakers` audio send
"lanes" at join, whatever the room's size, and the server decides every CONFERENCE_TICK who
fills them, from the audio level each participant's packets carry (RFC 6464; see lastn.py),
without decoding: audio lanes carry the loudest speakers, video lanes the active speaker
and the most recent ones (only the active speaker for a `low` receiver, none for one who
turned video off). A lane that changes source waits for, and asks, the new source's
keyframe, so the new picture appears at once. `layout` follows the plan, and
`on_room_changed` tells the page when it changes.

What nobody uses is not sent to the server either, as production SFUs do for large rooms:
the offer asks conference participants for Opus DTX (`usedtx=1`: a silent browser sends a
comfort-noise packet every 400 ms instead of 50 packets a second; the ranking takes a
participant whose packets stop for silent), and a participant whose video no plan has held
for VIDEO_PAUSE_AFTER is asked to stop sending it (`on_video_wanted`), and to start again as
soon as their voice rises or a plan picks them.

The engine imports neither Flask nor the database; it reports through callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from telehealth.video import direct_send
from telehealth.video.answers import (
    MAX_CANDIDATES,
    AnswerRefused,
    candidate_count,
    candidate_problem,
    is_mdns_candidate,
    tidy_answer,
)
from telehealth.video.codecs import (
    ProfileOpusEncoder,
    ProfileVp8Encoder,
    cap_remb,
    estimate_bitrate,
    install_encoder,
    install_receiver_tap,
    on_audio_level,
    on_keyframe_request,
)
from telehealth.video.lastn import (
    AudioLevel,
    MediaPlan,
    SelectorSettings,
    SpeakerSelector,
    quality_for,
)
from telehealth.video.profiles import Profile, conference_video_bps
from telehealth.video.tracks import Feed, ReceiverTap, SlotTrack

logger = logging.getLogger(__name__)

MAX_PARTICIPANTS = 4
CALL_TIMEOUT = 15.0
# A connection not up this long after its offer is given up (reported "failed", as a
# connection that fails later is): an outside client that never answers, or whose ICE
# never completes (a trickling client that sends no end-of-candidates), holds no ports
# and no place in the room for ever. Far longer than ICE takes when a path works (a
# check that gets through is answered within a round trip or two).
CONNECT_TIMEOUT = 30.0
# How often a conference's plan is computed: well under the selector's dwell (0.3 s), so
# the dwell, not the timer, decides how soon a new speaker is seen.
CONFERENCE_TICK = 0.05
# A speaker who falls quiet keeps their audio lane this long unless a louder one needs it:
# lanes (and the layout every page is sent) do not flap with each pause for breath.
AUDIO_HOLD = 1.0
# A participant's video nobody has been sent for this long is paused at its source (the page
# stops its encoder): most of a large room is watched by nobody, and receiving their video
# through aiortc costs the server more than forwarding what is watched. Long enough that a
# speaker who drops out of the last-N for a moment keeps sending.
VIDEO_PAUSE_AFTER = 2.0
# A participant told to resume (or pause) whose video still does not come (or still comes)
# this long after is told again: a page that reconnected, or a message lost on the way.
VIDEO_WANTED_RESEND = 3.0
T = TypeVar("T")


class EngineError(Exception):
    """A request the engine refuses (bad SDP, unknown participant, full room)."""


class RoomFull(EngineError):
    pass


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server for the server's own peer connections."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class EngineCallbacks(Protocol):
    def on_connection_state(self, room_id: str, participant_id: str, state: str) -> None:
        """A participant's connection changed state ("connected", "failed", "closed")."""

    def on_room_changed(self, room_id: str) -> None:
        """Who is in the room, or which slot carries whom, changed."""

    def on_send_limit(self, room_id: str, participant_id: str, profile: str) -> None:
        """The participant should now send within this profile (its page sets its encoder)."""

    def on_video_wanted(self, room_id: str, participant_id: str, wanted: bool) -> None:
        """Conference rooms: the participant should stop (False) or start again (True)
        sending video; nobody has been shown it for a while, or somebody will be now."""


@dataclass(frozen=True)
class ConferencePlan:
    """A room run as a conference (see `VideoEngine.open_conference`): up to
    `max_participants`; each receiver gets the video of the active speaker and the most
    recent speakers (`last_n` in all) and the audio of the `audio_speakers` loudest."""

    last_n: int = 4
    audio_speakers: int = 3
    max_participants: int = 50

    def __post_init__(self) -> None:
        if self.last_n < 1 or self.audio_speakers < 1 or self.max_participants < 2:
            raise ValueError("a conference needs a video and an audio lane and two people")


class NoCallbacks:
    def on_connection_state(self, room_id: str, participant_id: str, state: str) -> None:
        pass

    def on_room_changed(self, room_id: str) -> None:
        pass

    def on_send_limit(self, room_id: str, participant_id: str, profile: str) -> None:
        pass

    def on_video_wanted(self, room_id: str, participant_id: str, wanted: bool) -> None:
        pass


@dataclass
class Slot:
    audio: RTCRtpTransceiver
    video: RTCRtpTransceiver
    audio_track: SlotTrack
    video_track: SlotTrack
    audio_encoder: ProfileOpusEncoder
    video_encoder: ProfileVp8Encoder
    holder: str | None = None  # participant id whose media fills this slot


@dataclass
class Lane:
    """One send transceiver of a conference participant: the audio or video of whoever the
    conference plan puts on it (see `VideoEngine._replan`)."""

    kind: str
    transceiver: RTCRtpTransceiver
    track: SlotTrack
    encoder: ProfileOpusEncoder | ProfileVp8Encoder
    holder: str | None = None
    # Audio: until when a speaker who fell quiet keeps the lane (see AUDIO_HOLD).
    held_until: float = 0.0


@dataclass
class Conference:
    """A room's conference state: its plan, its speaker ranking and the timer applying it."""

    plan: ConferencePlan
    selector: SpeakerSelector
    task: asyncio.Task[None] | None = None
    # The plans last applied, and until when they stay applied as they are (a quiet
    # speaker's audio lane runs out): a tick that would change nothing does nothing.
    applied: tuple[tuple[str, MediaPlan], ...] = ()
    applied_until: float = 0.0


@dataclass
class Participant:
    id: str
    room_id: str
    pc: RTCPeerConnection
    profile: Profile
    slots: list[Slot]
    feeds: dict[str, Feed] = field(default_factory=dict)  # kind -> what they send us
    send_limit: Profile | None = None  # what they were last asked to send within
    closed: bool = False
    muted: bool = False  # by a moderator: their audio is not forwarded
    receive_video: bool = True  # False: audio only (see set_receive_video)
    connected: bool = False  # the connection has been up at least once
    remote_candidates: int = 0  # taken from their answer and trickled (see MAX_CANDIDATES)
    connect_deadline: asyncio.TimerHandle | None = None  # see CONNECT_TIMEOUT
    lanes: list[Lane] = field(default_factory=list)  # conference rooms (instead of slots)
    plan: MediaPlan | None = None  # conference rooms: what the lanes carry, in order
    # Conference rooms: whether they are asked to send video (see `on_video_wanted`), since
    # when no plan has held their video, and when they were last told.
    video_wanted: bool = True
    unwatched_since: float | None = None
    video_told_at: float = 0.0

    def slot_for(self, other_id: str) -> Slot | None:
        return next((s for s in self.slots if s.holder == other_id), None)

    def free_slot(self) -> Slot | None:
        return next((s for s in self.slots if s.holder is None), None)


@dataclass
class Room:
    id: str
    participants: dict[str, Participant] = field(default_factory=dict)
    conference: Conference | None = None


class RoomRegistry(Protocol):
    """Where the engine keeps its rooms; one process owns a room's media."""

    def get(self, room_id: str) -> Room | None: ...

    def get_or_create(self, room_id: str) -> Room: ...

    def remove(self, room_id: str) -> None: ...

    def all(self) -> list[Room]: ...


class InMemoryRoomRegistry:
    """Rooms of this process, in a dict (touched only from the engine's loop)."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def get_or_create(self, room_id: str) -> Room:
        return self._rooms.setdefault(room_id, Room(room_id))

    def remove(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def all(self) -> list[Room]:
        return list(self._rooms.values())


def limit_offer(sdp: str, profile: Profile, video_bps: int | None = None,
                dtx: bool = False) -> str:
    """Write the profile's send limits into the media sections the participant sends on
    (`video_bps`: a lower video limit than the profile's; `dtx`: ask for Opus DTX).

    The browser sets its encoders from these (b=AS/TIAS for video, Opus
    maxaveragebitrate and usedtx); aiortc ignores them, and they change nothing the server
    sends.
    """
    video_bps = profile.video_max_bps if video_bps is None else video_bps
    sections = sdp.split("\r\nm=")
    out = [sections[0]]
    for section in sections[1:]:
        lines = section.split("\r\n")
        if "a=recvonly" in lines and lines[0].startswith("video"):
            at = next(i for i, line in enumerate(lines) if line.startswith("c=")) + 1
            lines[at:at] = [f"b=AS:{video_bps // 1000}", f"b=TIAS:{video_bps}"]
        elif "a=recvonly" in lines and lines[0].startswith("audio"):
            opus = [line.split()[0].split(":")[1] for line in lines
                    if line.startswith("a=rtpmap:") and " opus/" in line.lower()]
            for pt in opus:
                fmtp = next((i for i, line in enumerate(lines)
                             if line.startswith(f"a=fmtp:{pt} ")), None)
                limit = f"maxaveragebitrate={profile.audio_bps}"
                if dtx:
                    # RFC 7587: the receiver prefers DTX; Chrome then sends a comfort-noise
                    # packet every 400 ms while the microphone hears no speech.
                    limit += ";usedtx=1"
                if fmtp is None:
                    at = next(i for i, line in enumerate(lines)
                              if line.startswith(f"a=rtpmap:{pt} ")) + 1
                    lines.insert(at, f"a=fmtp:{pt} {limit}")
                else:
                    lines[fmtp] += f";{limit}"
        out.append("\r\n".join(lines))
    return "\r\nm=".join(out)


def send_limit(participant: Participant, room: Room) -> Profile:
    """The lowest profile among the participant and everyone who receives their video.

    In a conference anyone who takes video may receive anyone's at the next change of
    speaker: everyone sends within the lowest profile among those who take video (a
    forwarded picture then fits every receiver without re-encoding, and the send limit
    does not change with each speaker).
    """
    profiles = [participant.profile]
    if room.conference is not None:
        profiles += [other.profile for other in room.participants.values()
                     if other.receive_video]
        return min(profiles, key=lambda p: (p.video_max_bps, p.width * p.height))
    for other in room.participants.values():
        slot = other.slot_for(participant.id)
        if other is not participant and slot is not None and not slot.video_track.paused:
            profiles.append(other.profile)
    return min(profiles, key=lambda p: (p.video_max_bps, p.width * p.height))


def layout(participant: Participant) -> dict[str, dict[str, str | None]]:
    """Which of the participant's mids carry each other participant's audio and video
    (in a conference: in the plan's order, the active speaker's video first)."""
    if not participant.lanes:
        return {slot.holder: {"audio": slot.audio.mid, "video": slot.video.mid}
                for slot in participant.slots if slot.holder is not None}
    plan = participant.plan
    order = [*plan.video, *plan.audio] if plan is not None else []
    rank = {pid: order.index(pid) for pid in reversed(order)}
    held = sorted(((lane.holder, lane) for lane in participant.lanes if lane.holder is not None),
                  key=lambda pair: rank.get(pair[0], len(order)))
    out: dict[str, dict[str, str | None]] = {}
    for holder, lane in held:
        out.setdefault(holder, {"audio": None, "video": None})[lane.kind] = lane.transceiver.mid
    return out


def video_cap(participant: Participant, room: Room) -> int:
    """The video bitrate the participant is asked to send at most (SDP, then REMB)."""
    limit = participant.send_limit or participant.profile
    if room.conference is None:
        return limit.video_max_bps
    return conference_video_bps(limit, room.conference.plan.audio_speakers)


def new_media_loop() -> asyncio.AbstractEventLoop:
    """The event loop of the engine's thread: uvloop's when it is installed.

    Forwarding is thousands of small callbacks a second on one loop (a task woken per lane
    per frame, one `sendto` per packet); uvloop runs them in C, which cut the engine's CPU
    in the conference bench (bench/README.md). aiortc and aioice use only the standard
    loop API (datagram endpoints, call_later, run_in_executor), which uvloop implements.
    The standard loop remains the fallback wherever uvloop is not importable.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _prefer(transceiver: RTCRtpTransceiver, kind: str) -> None:
    # VP8 only for video (H.264 costs about 4x to encode); Opus only for audio.
    wanted = {"video": ("video/vp8", "video/rtx"), "audio": ("audio/opus",)}[kind]
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs
              if c.mimeType.lower() in wanted]
    transceiver.setCodecPreferences(codecs)


class VideoEngine:
    """Owns the loop thread, the rooms and every peer connection in this process."""

    def __init__(self, callbacks: EngineCallbacks | None = None,
                 registry: RoomRegistry | None = None) -> None:
        self.callbacks: EngineCallbacks = callbacks or NoCallbacks()
        self.rooms: RoomRegistry = registry or InMemoryRoomRegistry()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._shutdown_hooks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        # Rooms whose ids start with a prefix report to that prefix's callbacks (conference
        # rooms to the conference hub, consult calls to the call hub).
        self._routes: dict[str, EngineCallbacks] = {}
        self.plans: dict[str, ConferencePlan] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the loop thread (idempotent)."""
        with self._lock:
            if self.running:
                return
            loop = new_media_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._loop = loop
            self._thread = threading.Thread(target=run, name="video-engine", daemon=True)
            self._thread.start()
            ready.wait(5)

    def shutdown(self) -> None:
        """Close every peer connection and stop the loop thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            try:
                for hook in self._shutdown_hooks:
                    asyncio.run_coroutine_threadsafe(hook(), loop).result(CALL_TIMEOUT)
                asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(CALL_TIMEOUT)
                asyncio.run_coroutine_threadsafe(self._cancel_leftovers(),
                                                 loop).result(CALL_TIMEOUT)
                asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(),
                                                 loop).result(CALL_TIMEOUT)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(CALL_TIMEOUT)
                loop.close()
                self._loop = self._thread = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the engine's loop (owner of every aiortc object) and wait."""
        return self._call(coro)

    def on_shutdown(self, hook: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Await `hook()` on the loop at shutdown, before the engine closes its own calls."""
        self._shutdown_hooks.append(hook)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the engine's loop from another thread and wait for it."""
        self.start()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    def route(self, prefix: str, callbacks: EngineCallbacks) -> None:
        """Send the callbacks of rooms whose id starts with `prefix` to `callbacks`."""
        self._routes[prefix] = callbacks

    def callbacks_for(self, room_id: str) -> EngineCallbacks:
        for prefix, callbacks in self._routes.items():
            if room_id.startswith(prefix):
                return callbacks
        return self.callbacks

    def _notify(self, name: str, room_id: str, *args: Any) -> None:
        # Callbacks may touch the database or the network: never on the media loop.
        assert self._loop is not None
        func: Callable[..., None] = getattr(self.callbacks_for(room_id), name)
        future = self._loop.run_in_executor(None, func, room_id, *args)
        future.add_done_callback(self._log_callback_error)

    @staticmethod
    def _log_callback_error(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("video callback failed", exc_info=future.exception())

    # ------------------------------------------------------------------ public API (sync)

    def join(self, room_id: str, participant_id: str, profile: Profile,
             ice_servers: list[IceServer] | None = None, relay_only: bool = False) -> str:
        """Add (or re-add) a participant; returns the server's SDP offer for them."""
        return self._call(self._join(room_id, participant_id, profile, ice_servers or [],
                                     relay_only))

    def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        """Apply the participant's SDP answer to the server's offer."""
        self._call(self._answer(room_id, participant_id, sdp))

    def add_candidate(self, room_id: str, participant_id: str, candidate: str,
                      sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """Add one trickled ICE candidate from the participant."""
        self._call(self._add_candidate(room_id, participant_id, candidate, sdp_mid,
                                       sdp_mline_index))

    def leave(self, room_id: str, participant_id: str) -> bool:
        """Remove a participant and close their connection; True when the room is empty."""
        return self._call(self._leave(room_id, participant_id))

    def set_profile(self, room_id: str, participant_id: str, profile: Profile) -> None:
        """Change what the server sends to this participant."""
        self._call(self._set_profile(room_id, participant_id, profile))

    def set_receive_video(self, room_id: str, participant_id: str, enabled: bool) -> None:
        """Audio-only switch: stop (or resume) sending video to this participant."""
        self._call(self._set_receive_video(room_id, participant_id, enabled))

    def layout(self, room_id: str, participant_id: str) -> dict[str, dict[str, str | None]]:
        """For one participant: which mids carry each other participant's audio and video.

        In a conference only the participants the plan forwards appear (a mid may be None),
        in the plan's order: the active speaker's video first."""
        return self._call(self._layout(room_id, participant_id))

    def layouts(self, room_id: str) -> dict[str, dict[str, dict[str, str | None]]]:
        """`layout` of every participant of the room at once (one trip to the loop)."""
        return self._call(self._layouts(room_id))

    def active_speaker(self, room_id: str) -> str | None:
        """A conference room's active speaker (None before anyone spoke, or not a
        conference)."""
        return self._call(self._active_speaker(room_id))

    def send_limit(self, room_id: str, participant_id: str) -> str:
        """The profile this participant is asked to send within (see `on_send_limit`)."""
        return self._call(self._send_limit(room_id, participant_id))

    def participants(self, room_id: str) -> list[str]:
        """Ids of the participants in a room, in joining order."""
        return self._call(self._participants(room_id))

    def open_conference(self, room_id: str, plan: ConferencePlan) -> None:
        """Run `room_id` as a conference room from its next join on (idempotent).

        A room that already has participants keeps how it was opened until it empties."""
        self.plans[room_id] = plan

    def close_conference(self, room_id: str) -> None:
        """Forget a conference room's plan (after its last participant left)."""
        self.plans.pop(room_id, None)

    def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        """A moderator's mute: the server stops (or resumes) forwarding this participant's
        audio to everyone, whatever their page sends."""
        self._call(self._set_muted(room_id, participant_id, muted))

    def set_pinned(self, room_id: str, participant_id: str | None) -> None:
        """Pin a conference participant (their shared screen) first in everyone's video, and
        never ask them to pause it; None unpins. Ignored for a room that is not a conference
        or someone not (or no longer) in it: the pin goes when they leave anyway."""
        self._call(self._set_pinned(room_id, participant_id))

    def stats(self) -> dict[str, int]:
        """Rooms and peer connections currently open in this process."""
        return self._call(self._stats())

    # ------------------------------------------------------------------ on the loop

    def _participant(self, room_id: str, participant_id: str) -> Participant:
        room = self.rooms.get(room_id)
        participant = room.participants.get(participant_id) if room else None
        if participant is None:
            raise EngineError("not in this call")
        return participant

    async def _join(self, room_id: str, participant_id: str, profile: Profile,
                    ice_servers: list[IceServer], relay_only: bool) -> str:
        room = self.rooms.get_or_create(room_id)
        muted = False
        if participant_id in room.participants:  # a reload or a reconnect: start afresh
            muted = room.participants[participant_id].muted  # a reload does not unmute
            await self._remove(room, participant_id, notify=False)
            # Alone in the call, they emptied the room and the registry dropped it: join a
            # registered room, never the dropped one (its connection would be unreachable).
            room = self.rooms.get_or_create(room_id)
        plan = self.plans.get(room_id)
        if room.conference is None and plan is not None and not room.participants:
            settings = SelectorSettings(last_n=plan.last_n, max_audio=plan.audio_speakers,
                                        fill_from_roster=True)
            room.conference = Conference(plan, SpeakerSelector(settings))
        conference = room.conference
        capacity = conference.plan.max_participants if conference else MAX_PARTICIPANTS
        if len(room.participants) >= capacity:
            if not room.participants:
                self.rooms.remove(room_id)
            raise RoomFull("the call is full")

        config = RTCConfiguration(
            iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                        for s in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only
            else RTCIceTransportPolicy.ALL,
        )
        pc = RTCPeerConnection(config)
        label = f"{room_id}/{participant_id}"
        feeds = {}
        for kind in ("audio", "video"):
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            _prefer(transceiver, kind)
            tap = ReceiverTap()
            install_receiver_tap(transceiver.receiver, tap)
            feeds[kind] = feed = Feed(kind, f"{label}/{kind}", transceiver.receiver, tap)
            if kind == "video":
                cap_remb(transceiver.receiver, feed.send_cap)
            elif conference is not None:
                on_audio_level(transceiver.receiver,
                               self._level_listener(conference.selector, participant_id))
        feeds["audio"].muted = muted
        if conference is None:
            slots = [self._make_slot(pc, profile) for _n in range(MAX_PARTICIPANTS - 1)]
            lanes = []
        else:
            # Lanes, not one slot per other participant: a connection's size does not grow
            # with the room, and nobody's joining needs a renegotiation.
            slots = []
            lanes = [self._make_lane(pc, kind, profile) for kind, count in
                     (("video", conference.plan.last_n), ("audio", conference.plan.audio_speakers))
                     for _n in range(count)]
        participant = Participant(participant_id, room_id, pc, profile, slots, feeds,
                                  muted=muted, lanes=lanes, video_told_at=time.monotonic())

        @pc.on("track")
        def on_track(track: Any) -> None:
            logger.info("%s: receiving %s", label, track.kind)
            feeds[track.kind].start(track)
            self._notify("on_room_changed", room_id)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            logger.info("%s: connection %s", label, state)
            if participant.closed:
                return
            if state == "connected":
                participant.connected = True
                self._start_sending(participant)
            elif state == "closed":
                # Not by us (we mark a participant closed first): the client closed its
                # peer connection (DTLS close_notify) without `leave`. Nothing will flow on
                # it again; keeping it would hold a dead member in the room and slots whose
                # sender stopped, so it goes as a failed one does.
                state = "failed"
            self._notify("on_connection_state", room_id, participant_id, state)
            if state == "failed":
                await self._remove(room, participant_id, notify=True)

        # Fill slots both ways with everybody already here (a conference's plan fills lanes).
        for other in room.participants.values() if conference is None else ():
            theirs, mine = other.free_slot(), participant.free_slot()
            assert theirs is not None and mine is not None  # MAX_PARTICIPANTS guarantees it
            theirs.holder, mine.holder = participant_id, other.id
            other.feeds["audio"].attach(mine.audio_track)
            other.feeds["video"].attach(mine.video_track)
            feeds["audio"].attach(theirs.audio_track)
            feeds["video"].attach(theirs.video_track)
        room.participants[participant_id] = participant
        if conference is not None:
            conference.selector.add(participant_id)
            conference.selector.set_muted(participant_id, muted)
            if conference.task is None:
                conference.task = asyncio.ensure_future(self._run_conference(room))
        self._update_limits(room)

        try:
            await pc.setLocalDescription(await pc.createOffer())
        except Exception:
            await self._remove(room, participant_id, notify=False)
            raise
        logger.info("%s: joined (%s profile)", label, profile.name)
        participant.connect_deadline = asyncio.get_running_loop().call_later(
            CONNECT_TIMEOUT, lambda: asyncio.ensure_future(self._give_up_if_unconnected(
                room, participant)))
        limit = participant.send_limit or profile
        return limit_offer(str(pc.localDescription.sdp), limit, video_cap(participant, room),
                           dtx=conference is not None)

    @staticmethod
    def _make_sender(pc: RTCPeerConnection, kind: str, profile: Profile
                     ) -> tuple[RTCRtpTransceiver, SlotTrack,
                                ProfileOpusEncoder | ProfileVp8Encoder]:
        """One send transceiver whose track is filled by the engine, with its encoder."""
        track = SlotTrack(kind, profile)
        track.sending = False  # until the connection is up (see `_start_sending`)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        _prefer(transceiver, kind)
        encoder: ProfileOpusEncoder | ProfileVp8Encoder = ProfileOpusEncoder(profile) \
            if kind == "audio" else ProfileVp8Encoder(profile, track.window)
        install_encoder(transceiver.sender, encoder)
        track.stream = direct_send.install(transceiver.sender, encoder)
        if kind == "video":
            # A receiver's picture-loss request reaches the participant whose frames we
            # forward; our own encoder's keyframe (the sender's own handler) serves while
            # re-encoding.
            track.on_keyframe_needed = on_keyframe_request(transceiver.sender,
                                                           track.request_keyframe)
        return transceiver, track, encoder

    @classmethod
    def _make_slot(cls, pc: RTCPeerConnection, profile: Profile) -> Slot:
        audio, audio_track, audio_encoder = cls._make_sender(pc, "audio", profile)
        video, video_track, video_encoder = cls._make_sender(pc, "video", profile)
        assert isinstance(audio_encoder, ProfileOpusEncoder)
        assert isinstance(video_encoder, ProfileVp8Encoder)
        return Slot(audio, video, audio_track, video_track, audio_encoder, video_encoder)

    @classmethod
    def _make_lane(cls, pc: RTCPeerConnection, kind: str, profile: Profile) -> Lane:
        return Lane(kind, *cls._make_sender(pc, kind, profile))

    @staticmethod
    def _level_listener(selector: SpeakerSelector,
                        participant_id: str) -> Callable[[bool, int], None]:
        """Feeds the audio level of each packet a participant sends to the room's ranking."""
        def heard(voice: bool, dbov: int) -> None:
            selector.record(participant_id, AudioLevel(voice, dbov), time.monotonic())
        return heard

    def _update_limits(self, room: Room) -> None:
        """Ask each participant to send within what all their receivers can take."""
        for participant in room.participants.values():
            limit = send_limit(participant, room)
            if limit != participant.send_limit:
                first = participant.send_limit is None
                participant.send_limit = limit
                if not first:  # the first one travels in the offer
                    self._notify("on_send_limit", room.id, participant.id,
                                 limit.name)
            participant.feeds["video"].set_send_cap(video_cap(participant, room))

    @staticmethod
    def _start_sending(participant: Participant) -> None:
        """The connection is up: the slots (lanes) whose m-line the answer took start taking
        media, from a keyframe; the ones it declined (port 0, inactive) never do."""
        transceivers = [(slot.audio, slot.audio_track) for slot in participant.slots] + \
            [(slot.video, slot.video_track) for slot in participant.slots] + \
            [(lane.transceiver, lane.track) for lane in participant.lanes]
        for transceiver, track in transceivers:
            track.set_sending(transceiver.currentDirection in ("sendonly", "sendrecv"))

    async def _give_up_if_unconnected(self, room: Room, participant: Participant) -> None:
        if participant.closed or participant.connected \
                or room.participants.get(participant.id) is not participant:
            return
        logger.info("%s/%s: not connected %.0f s after the offer (%s, %s); giving up",
                    room.id, participant.id, CONNECT_TIMEOUT, participant.pc.signalingState,
                    participant.pc.connectionState)
        self._notify("on_connection_state", room.id, participant.id, "failed")
        await self._remove(room, participant.id, notify=True)

    async def _answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        participant = self._participant(room_id, participant_id)
        if participant.pc.signalingState != "have-local-offer":
            raise EngineError("no offer is waiting for an answer")
        try:
            sdp = tidy_answer(sdp, str(participant.pc.localDescription.sdp))
        except AnswerRefused as exc:
            raise EngineError(f"the answer is not valid SDP: {exc}") from exc
        participant.remote_candidates += candidate_count(sdp)
        try:
            await participant.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError, ... on bad SDP
            logger.info("%s/%s: bad answer: %r", room_id, participant_id, exc)
            raise EngineError("the answer is not valid SDP") from exc

    async def _add_candidate(self, room_id: str, participant_id: str, candidate: str,
                             sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        participant = self._participant(room_id, participant_id)
        text = candidate.strip().removeprefix("a=").removeprefix("candidate:").strip()
        pc = participant.pc
        # Every m-line is bundled on the first one's transport (max-bundle): a candidate
        # goes there whichever mid or index the client names (aiortc would drop one that
        # names a bundled mid without a word, and refuse one that names neither).
        bundle_mid = pc.getTransceivers()[0].mid
        if not text:
            # End of candidates (a browser's empty candidate): lets ICE give up once every
            # pair failed instead of waiting for more. Candidates after it are ignored.
            await pc.addIceCandidate(None)
            return
        if is_mdns_candidate(text):
            logger.debug("%s/%s: mDNS candidate left out", room_id, participant_id)
            return  # see answers.py: their checks reach us and are answered as prflx
        problem = candidate_problem(text)
        if problem is not None:
            raise EngineError(problem)
        if participant.remote_candidates >= MAX_CANDIDATES:
            raise EngineError("too many ICE candidates for one connection")
        try:
            parsed = candidate_from_sdp(text)
        except Exception as exc:
            raise EngineError("the ICE candidate is not valid") from exc
        parsed.sdpMid, parsed.sdpMLineIndex = bundle_mid, 0
        participant.remote_candidates += 1
        try:
            await pc.addIceCandidate(parsed)
        except Exception as exc:
            raise EngineError("the ICE candidate does not fit the call") from exc

    async def _leave(self, room_id: str, participant_id: str) -> bool:
        room = self.rooms.get(room_id)
        if room is None or participant_id not in room.participants:
            return room is None or not room.participants
        await self._remove(room, participant_id, notify=True)
        return not room.participants

    async def _remove(self, room: Room, participant_id: str, notify: bool) -> None:
        participant = room.participants.pop(participant_id, None)
        if participant is None:
            return
        participant.closed = True
        if participant.connect_deadline is not None:
            # Its closure holds the whole connection: let it go with the participant.
            participant.connect_deadline.cancel()
        for other in room.participants.values():
            slot = other.slot_for(participant_id)
            if slot is not None:
                slot.holder = None
                for track in (slot.audio_track, slot.video_track):
                    if track.source is not None:
                        track.source.detach(track)
            for lane in other.lanes:
                if lane.holder == participant_id:
                    self._fill(room, lane, None, 0.0)
        if room.conference is not None:
            room.conference.selector.remove(participant_id)
        for feed in participant.feeds.values():
            await feed.stop()
        for slot in participant.slots:
            slot.audio_track.stop()
            slot.video_track.stop()
        for lane in participant.lanes:
            lane.track.stop()
        await participant.pc.close()
        logger.info("%s/%s: left", room.id, participant_id)
        if not room.participants:
            self.rooms.remove(room.id)
            if room.conference is not None and room.conference.task is not None:
                room.conference.task.cancel()
        else:
            self._update_limits(room)
            self._replan(room)  # the leaver's lanes go to the next in line at once
        if notify:
            self._notify("on_connection_state", room.id, participant_id, "closed")
            self._notify("on_room_changed", room.id)

    async def _set_profile(self, room_id: str, participant_id: str, profile: Profile) -> None:
        participant = self._participant(room_id, participant_id)
        participant.profile = profile
        for slot in participant.slots:
            slot.video_encoder.set_profile(profile)
            slot.audio_track.set_profile(profile)
            slot.video_track.set_profile(profile)
        for lane in participant.lanes:
            if isinstance(lane.encoder, ProfileVp8Encoder):
                lane.encoder.set_profile(profile)
            lane.track.set_profile(profile)
        room = self.rooms.get(room_id)
        assert room is not None
        self._update_limits(room)
        self._replan(room)  # `low` takes the active speaker's video only

    async def _set_receive_video(self, room_id: str, participant_id: str,
                                 enabled: bool) -> None:
        participant = self._participant(room_id, participant_id)
        participant.receive_video = enabled
        for track in [slot.video_track for slot in participant.slots] + \
                [lane.track for lane in participant.lanes if lane.kind == "video"]:
            track.paused = not enabled
            track.clear()  # stopping, or starting again from a keyframe
            if track.source is not None:
                track.source.update_decoding()
                if enabled:
                    track.source.request_keyframe()
        room = self.rooms.get(room_id)
        assert room is not None
        self._update_limits(room)
        self._replan(room)

    async def _layout(self, room_id: str, participant_id: str
                      ) -> dict[str, dict[str, str | None]]:
        return layout(self._participant(room_id, participant_id))

    async def _layouts(self, room_id: str) -> dict[str, dict[str, dict[str, str | None]]]:
        room = self.rooms.get(room_id)
        return {pid: layout(p) for pid, p in room.participants.items()} if room else {}

    async def _active_speaker(self, room_id: str) -> str | None:
        room = self.rooms.get(room_id)
        return room.conference.selector.active if room and room.conference else None

    async def _send_limit(self, room_id: str, participant_id: str) -> str:
        participant = self._participant(room_id, participant_id)
        return (participant.send_limit or participant.profile).name

    async def _participants(self, room_id: str) -> list[str]:
        room = self.rooms.get(room_id)
        return list(room.participants) if room else []

    async def _set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        participant = self._participant(room_id, participant_id)
        participant.muted = muted
        # Their audio still reaches the server but goes to no one (consult or conference)...
        participant.feeds["audio"].muted = muted
        room = self.rooms.get(room_id)
        if room is not None and room.conference is not None:
            # ...and in a conference they rank as silent, so their audio lanes go to others.
            room.conference.selector.set_muted(participant_id, muted)
            self._replan(room)

    async def _set_pinned(self, room_id: str, participant_id: str | None) -> None:
        room = self.rooms.get(room_id)
        if room is None or room.conference is None:
            return
        selector = room.conference.selector
        if participant_id is not None and participant_id not in room.participants:
            return
        if selector.pinned != participant_id:
            selector.set_pinned(participant_id)
            self._replan(room)

    # ------------------------------------------------------------------ conference plan

    async def _run_conference(self, room: Room) -> None:
        """Apply the room's conference plan every CONFERENCE_TICK until the room empties."""
        while True:
            await asyncio.sleep(CONFERENCE_TICK)
            try:
                self._replan(room, force=False)
            except Exception:  # a bad tick must not end the room's plan for good
                logger.exception("%s: conference plan failed", room.id)

    def _replan(self, room: Room, force: bool = True) -> None:
        """Rank the speakers now and point every lane of the room at what the plan says;
        tell the pages (`on_room_changed`) when someone's layout or the active speaker
        changed. `force`: also when the plans look unchanged (someone joined, left, was
        muted...)."""
        conference = room.conference
        if conference is None or not room.participants:
            return
        now = time.monotonic()
        selector = conference.selector
        active = selector.active
        selector.tick(now)
        qualities = {pid: quality_for(p.profile.name, weak_link=False,
                                      audio_only=not p.receive_video)
                     for pid, p in room.participants.items()}
        plans = tuple(selector.plans_for(qualities, now).items())
        changed = selector.active != active
        if not (force or changed) and plans == conference.applied \
                and now < conference.applied_until:
            self._want_video(room, plans, now)
            return
        conference.applied, conference.applied_until = plans, math.inf
        for pid, plan in plans:
            receiver = room.participants[pid]
            before = list(layout(receiver).items())
            until = self._assign(room, receiver, plan, now)
            conference.applied_until = min(conference.applied_until, until)
            changed = changed or list(layout(receiver).items()) != before
        watched = {lane.holder for p in room.participants.values() for lane in p.lanes
                   if lane.kind == "video" and lane.holder is not None}
        for pid, participant in room.participants.items():
            estimate_bitrate(participant.feeds["video"].receiver, pid in watched)
        self._want_video(room, plans, now)
        if changed:
            self._notify("on_room_changed", room.id)

    def _want_video(self, room: Room, plans: tuple[tuple[str, MediaPlan], ...],
                    now: float) -> None:
        """Ask participants whose video no plan has held for VIDEO_PAUSE_AFTER to stop
        sending it, and to start again as soon as a plan holds it or their voice rises
        above the speech threshold: a voice becomes the active speaker only after a dwell
        (0.15 s or more), which hides most of the page's round trip, so by the time a lane
        takes a new speaker their encoder runs again and answers the lane's keyframe
        request with its next frame."""
        assert room.conference is not None
        watched = {pid for _receiver, plan in plans for pid in plan.video}
        selector = room.conference.selector
        speaking = selector.speaking(now)
        for pid, participant in room.participants.items():
            feed = participant.feeds["video"]
            # The pinned participant shares a screen: never paused, even if nobody receives
            # video right now (the first page to turn video on gets it at once).
            if pid in watched or pid in speaking or pid == selector.pinned:
                participant.unwatched_since = None
                if not participant.video_wanted:
                    # Their encoder starts with a keyframe; the lane that takes them asks
                    # for another (a request now would make that one wait out the
                    # KEYFRAME_REQUEST_GAP).
                    participant.video_wanted = True
                    self._tell_video_wanted(room, participant, now)
                elif now - feed.last_frame_at > VIDEO_WANTED_RESEND \
                        and now - participant.video_told_at > VIDEO_WANTED_RESEND:
                    self._tell_video_wanted(room, participant, now)  # told, still nothing
                continue
            if participant.unwatched_since is None:
                participant.unwatched_since = now
            if participant.video_wanted:
                if now - participant.unwatched_since >= VIDEO_PAUSE_AFTER:
                    participant.video_wanted = False
                    self._tell_video_wanted(room, participant, now)
            elif now - feed.last_frame_at < 1.0 \
                    and now - participant.video_told_at > VIDEO_WANTED_RESEND:
                self._tell_video_wanted(room, participant, now)  # told, still sending

    def _tell_video_wanted(self, room: Room, participant: Participant, now: float) -> None:
        participant.video_told_at = now
        logger.debug("%s/%s: video %s", room.id, participant.id,
                     "wanted" if participant.video_wanted else "paused")
        self._notify("on_video_wanted", room.id, participant.id, participant.video_wanted)

    def _assign(self, room: Room, receiver: Participant, plan: MediaPlan,
                now: float) -> float:
        """Point the receiver's lanes at the plan, moving as few lanes as possible; returns
        when a quiet speaker's audio lane runs out (inf: none is held)."""
        receiver.plan = plan
        for kind, wanted in (("video", plan.video), ("audio", plan.audio)):
            lanes = [lane for lane in receiver.lanes if lane.kind == kind]
            for lane in lanes:
                if lane.holder is None:
                    continue
                if lane.holder in wanted:
                    lane.held_until = now + AUDIO_HOLD
                    continue
                holder = room.participants.get(lane.holder)
                # A quiet speaker keeps an audio lane a while; never a muted one.
                if kind == "video" or holder is None or holder.muted \
                        or now >= lane.held_until:
                    self._fill(room, lane, None, now)
            for pid in wanted:
                if any(lane.holder == pid for lane in lanes):
                    continue
                # A free lane, else the quiet speaker's lane held the shortest (a plan never
                # wants more than there are lanes).
                lane = next((lane for lane in lanes if lane.holder is None), None) or \
                    min((lane for lane in lanes if lane.holder not in wanted),
                        key=lambda lane: lane.held_until)
                self._fill(room, lane, pid, now)
        return min((lane.held_until for lane in receiver.lanes if lane.kind == "audio"
                    and lane.holder is not None and lane.holder not in plan.audio),
                   default=math.inf)

    @staticmethod
    def _fill(room: Room, lane: Lane, holder_id: str | None, now: float) -> None:
        """Forward `holder_id`'s media on the lane (None empties it). A video lane starts
        from the new source's next keyframe, which attaching asks it for."""
        if lane.track.source is not None:
            lane.track.source.detach(lane.track)
        lane.holder, lane.held_until = holder_id, now + AUDIO_HOLD
        if holder_id is not None:
            room.participants[holder_id].feeds[lane.kind].attach(lane.track)

    async def _stats(self) -> dict[str, int]:
        rooms = self.rooms.all()
        return {"rooms": len(rooms), "peer_connections": sum(len(r.participants) for r in rooms)}

    async def _cancel_leftovers(self) -> None:
        # aiortc/aioice tasks still winding down (consent checks, timers): end them here
        # rather than have a closed loop destroy them pending.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_all(self) -> None:
        for room in self.rooms.all():
            for participant_id in list(room.participants):
                await self._remove(room, participant_id, notify=False)

