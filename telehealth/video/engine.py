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

The engine imports neither Flask nor the database; it reports through callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
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

from telehealth.video.codecs import (
    ProfileOpusEncoder,
    ProfileVp8Encoder,
    cap_remb,
    install_encoder,
    install_receiver_tap,
    on_keyframe_request,
)
from telehealth.video.profiles import Profile
from telehealth.video.tracks import Feed, ReceiverTap, SlotTrack

logger = logging.getLogger(__name__)

MAX_PARTICIPANTS = 4
CALL_TIMEOUT = 15.0
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


@dataclass(frozen=True)
class ConferencePlan:
    """A room run as a conference (see `VideoEngine.open_conference`): up to
    `max_participants`; each receiver gets the video of the active speaker and the most
    recent speakers (`last_n` in all) and the audio of the `audio_speakers` loudest."""

    last_n: int = 4
    audio_speakers: int = 3
    max_participants: int = 50


class NoCallbacks:
    def on_connection_state(self, room_id: str, participant_id: str, state: str) -> None:
        pass

    def on_room_changed(self, room_id: str) -> None:
        pass

    def on_send_limit(self, room_id: str, participant_id: str, profile: str) -> None:
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

    def slot_for(self, other_id: str) -> Slot | None:
        return next((s for s in self.slots if s.holder == other_id), None)

    def free_slot(self) -> Slot | None:
        return next((s for s in self.slots if s.holder is None), None)


@dataclass
class Room:
    id: str
    participants: dict[str, Participant] = field(default_factory=dict)


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


def limit_offer(sdp: str, profile: Profile) -> str:
    """Write the profile's send limits into the media sections the participant sends on.

    The browser sets its encoders from these (b=AS/TIAS for video, Opus
    maxaveragebitrate); aiortc ignores them, and they change nothing the server sends.
    """
    sections = sdp.split("\r\nm=")
    out = [sections[0]]
    for section in sections[1:]:
        lines = section.split("\r\n")
        if "a=recvonly" in lines and lines[0].startswith("video"):
            at = next(i for i, line in enumerate(lines) if line.startswith("c=")) + 1
            lines[at:at] = [f"b=AS:{profile.video_max_bps // 1000}",
                            f"b=TIAS:{profile.video_max_bps}"]
        elif "a=recvonly" in lines and lines[0].startswith("audio"):
            opus = [line.split()[0].split(":")[1] for line in lines
                    if line.startswith("a=rtpmap:") and " opus/" in line.lower()]
            for pt in opus:
                fmtp = next((i for i, line in enumerate(lines)
                             if line.startswith(f"a=fmtp:{pt} ")), None)
                limit = f"maxaveragebitrate={profile.audio_bps}"
                if fmtp is None:
                    at = next(i for i, line in enumerate(lines)
                              if line.startswith(f"a=rtpmap:{pt} ")) + 1
                    lines.insert(at, f"a=fmtp:{pt} {limit}")
                else:
                    lines[fmtp] += f";{limit}"
        out.append("\r\n".join(lines))
    return "\r\nm=".join(out)


def send_limit(participant: Participant, room: Room) -> Profile:
    """The lowest profile among the participant and everyone who receives their video."""
    profiles = [participant.profile]
    for other in room.participants.values():
        slot = other.slot_for(participant.id)
        if other is not participant and slot is not None and not slot.video_track.paused:
            profiles.append(other.profile)
    return min(profiles, key=lambda p: (p.video_max_bps, p.width * p.height))


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
            loop = asyncio.new_event_loop()
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
        """For one participant: which mids carry each other participant's audio and video."""
        return self._call(self._layout(room_id, participant_id))

    def send_limit(self, room_id: str, participant_id: str) -> str:
        """The profile this participant is asked to send within (see `on_send_limit`)."""
        return self._call(self._send_limit(room_id, participant_id))

    def participants(self, room_id: str) -> list[str]:
        """Ids of the participants in a room, in joining order."""
        return self._call(self._participants(room_id))

    def open_conference(self, room_id: str, plan: ConferencePlan) -> None:
        """Run `room_id` as a conference room from its next join on (idempotent)."""
        self.plans[room_id] = plan

    def close_conference(self, room_id: str) -> None:
        """Forget a conference room's plan (after its last participant left)."""
        self.plans.pop(room_id, None)

    def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        """A moderator's mute: the server stops (or resumes) forwarding this participant's
        audio to everyone, whatever their page sends."""
        self._call(self._set_muted(room_id, participant_id, muted))

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
        if participant_id in room.participants:  # a reload or a reconnect: start afresh
            await self._remove(room, participant_id, notify=False)
            # Alone in the call, they emptied the room and the registry dropped it: join a
            # registered room, never the dropped one (its connection would be unreachable).
            room = self.rooms.get_or_create(room_id)
        if len(room.participants) >= MAX_PARTICIPANTS:
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
        slots = []
        for _n in range(MAX_PARTICIPANTS - 1):
            slots.append(self._make_slot(pc, profile))
        participant = Participant(participant_id, room_id, pc, profile, slots, feeds)

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
            self._notify("on_connection_state", room_id, participant_id, state)
            if state == "failed":
                await self._remove(room, participant_id, notify=True)

        # Fill slots both ways with everybody already here.
        for other in room.participants.values():
            theirs, mine = other.free_slot(), participant.free_slot()
            assert theirs is not None and mine is not None  # MAX_PARTICIPANTS guarantees it
            theirs.holder, mine.holder = participant_id, other.id
            other.feeds["audio"].attach(mine.audio_track)
            other.feeds["video"].attach(mine.video_track)
            feeds["audio"].attach(theirs.audio_track)
            feeds["video"].attach(theirs.video_track)
        room.participants[participant_id] = participant
        self._update_limits(room)

        try:
            await pc.setLocalDescription(await pc.createOffer())
        except Exception:
            await self._remove(room, participant_id, notify=False)
            raise
        logger.info("%s: joined (%s profile)", label, profile.name)
        limit = participant.send_limit or profile
        return limit_offer(str(pc.localDescription.sdp), limit)

    @staticmethod
    def _make_slot(pc: RTCPeerConnection, profile: Profile) -> Slot:
        audio_track, video_track = SlotTrack("audio", profile), SlotTrack("video", profile)
        audio = pc.addTransceiver(audio_track, direction="sendonly")
        video = pc.addTransceiver(video_track, direction="sendonly")
        _prefer(audio, "audio")
        _prefer(video, "video")
        slot = Slot(audio, video, audio_track, video_track,
                    ProfileOpusEncoder(profile), ProfileVp8Encoder(profile, video_track.window))
        install_encoder(audio.sender, slot.audio_encoder)
        install_encoder(video.sender, slot.video_encoder)
        # A receiver's picture-loss request reaches the participant whose frames we forward;
        # our own encoder's keyframe (the sender's own handler) serves while re-encoding.
        video_track.on_keyframe_needed = on_keyframe_request(video.sender,
                                                             video_track.request_keyframe)
        return slot

    def _update_limits(self, room: Room) -> None:
        """Ask each participant to send within what all their receivers can take."""
        for participant in room.participants.values():
            limit = send_limit(participant, room)
            participant.feeds["video"].set_send_cap(limit.video_max_bps)
            if limit != participant.send_limit:
                first = participant.send_limit is None
                participant.send_limit = limit
                if not first:  # the first one travels in the offer
                    self._notify("on_send_limit", room.id, participant.id,
                                 limit.name)

    async def _answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        participant = self._participant(room_id, participant_id)
        if participant.pc.signalingState != "have-local-offer":
            raise EngineError("no offer is waiting for an answer")
        try:
            await participant.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError, ... on bad SDP
            logger.info("%s/%s: bad answer: %r", room_id, participant_id, exc)
            raise EngineError("the answer is not valid SDP") from exc

    async def _add_candidate(self, room_id: str, participant_id: str, candidate: str,
                             sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        participant = self._participant(room_id, participant_id)
        text = candidate.removeprefix("candidate:").strip()
        if not text:
            return  # end of candidates
        try:
            parsed = candidate_from_sdp(text)
        except Exception as exc:
            raise EngineError("the ICE candidate is not valid") from exc
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        try:
            await participant.pc.addIceCandidate(parsed)
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
        for other in room.participants.values():
            slot = other.slot_for(participant_id)
            if slot is not None:
                slot.holder = None
                for track in (slot.audio_track, slot.video_track):
                    if track.source is not None:
                        track.source.detach(track)
        for feed in participant.feeds.values():
            await feed.stop()
        for slot in participant.slots:
            slot.audio_track.stop()
            slot.video_track.stop()
        await participant.pc.close()
        logger.info("%s/%s: left", room.id, participant_id)
        if not room.participants:
            self.rooms.remove(room.id)
        else:
            self._update_limits(room)
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
        room = self.rooms.get(room_id)
        assert room is not None
        self._update_limits(room)

    async def _set_receive_video(self, room_id: str, participant_id: str,
                                 enabled: bool) -> None:
        participant = self._participant(room_id, participant_id)
        for slot in participant.slots:
            track = slot.video_track
            track.paused = not enabled
            track.clear()  # stopping, or starting again from a keyframe
            if track.source is not None:
                track.source.update_decoding()
                if enabled:
                    track.source.request_keyframe()
        room = self.rooms.get(room_id)
        assert room is not None
        self._update_limits(room)

    async def _layout(self, room_id: str, participant_id: str
                      ) -> dict[str, dict[str, str | None]]:
        participant = self._participant(room_id, participant_id)
        return {slot.holder: {"audio": slot.audio.mid, "video": slot.video.mid}
                for slot in participant.slots if slot.holder is not None}

    async def _send_limit(self, room_id: str, participant_id: str) -> str:
        participant = self._participant(room_id, participant_id)
        return (participant.send_limit or participant.profile).name

    async def _participants(self, room_id: str) -> list[str]:
        room = self.rooms.get(room_id)
        return list(room.participants) if room else []

    async def _set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        participant = self._participant(room_id, participant_id)
        participant.muted = muted  # the conference media plan stops forwarding it

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

