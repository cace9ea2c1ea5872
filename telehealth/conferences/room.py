"""The conference hub: who is in which session's live room, through which socket.

One per app, beside the call hub (telehealth.video.hub), whose media engine it shares: the
engine runs rooms named "conf-<session id>" as conferences (`ConferencePlan`: last-N video,
the loudest audios) and reports their events here (`engine.route("conf-", hub)`). Like a
call, a session's room lives on one node, claimed in a directory of its own
("conf-node"); the page asks which node (see views.where) and reconnects there.

Attendance comes from the media server: a member's connection reaching "connected" is a
join, its "closed" (they left, were removed, dropped past the grace period, or their
connection failed) is a leave; a reload or reconnect closes the old connection first, so
the gap is not counted.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from telehealth.boundary import unit_of_work
from telehealth.conferences import services
from telehealth.conferences.models import AttendanceKind, ConferenceDeck
from telehealth.extensions import socketio
from telehealth.video.claims import (
    ClaimedRooms,
    HeldMember,
    RoomKind,
    app_hub,
    peers_seen_by,
)
from telehealth.video.directory import DirectoryUnavailable, directory_from_config
from telehealth.video.engine import ConferencePlan, EngineError
from telehealth.video.guard import CallElsewhere
from telehealth.video.hub import Offer, get_hub
from telehealth.video.profiles import get_profile

logger = logging.getLogger(__name__)

NAMESPACE = "/conference"
ROOM_PREFIX = "conf-"


def room_id(session_id: int) -> str:
    """The engine's room for a session."""
    return f"{ROOM_PREFIX}{session_id}"


def socket_room(session_id: int) -> str:
    """The Socket.IO room of a session's members."""
    return f"conference-{session_id}"


def session_of(room: str) -> int:
    return int(room.removeprefix(ROOM_PREFIX))


@dataclass
class Member(HeldMember):
    person: services.RoomMember = field(kw_only=True)
    hand_since: float | None = None  # monotonic time the hand went up; None: down

    @property
    def display_name(self) -> str:
        return self.person.display_name


@dataclass
class Room:
    members: dict[str, Member] = field(default_factory=dict)
    # Participant ids a moderator muted: the mute holds across a reload or reconnect.
    muted: set[str] = field(default_factory=set)
    slide: dict[str, Any] | None = None  # what every page shows (see ConferenceHub.show_slide)
    # Who shares their screen: pinned first in everyone's video (see ConferenceHub.share).
    pinned: str | None = None


class ConferenceHub(ClaimedRooms):
    """One per app: the rooms of conference sessions held by this node."""

    kind = RoomKind("conference room of session", "conference-claims", NAMESPACE,
                    "session_id", room_id, socket_room)

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.calls = get_hub(app)
        self.engine = self.calls.engine
        self.node = self.calls.node
        self.directory = directory_from_config(app.config, "conf-node")
        self.lock = threading.RLock()
        self.rooms: dict[int, Room] = {}
        self.joined: dict[str, tuple[int, str]] = {}  # sid -> (session id, participant id)
        # (session id, participant id) -> user id, while their connection counts as attending.
        self.attending: dict[tuple[int, str], int] = {}
        # Users a moderator removed, per session: they do not come back in (this process).
        self.removed: dict[int, set[int]] = {}
        self.init_claims()
        self.engine.route(ROOM_PREFIX, self)

    def plan(self) -> ConferencePlan:
        config = self.app.config
        return ConferencePlan(last_n=int(config.get("CONFERENCE_LAST_N", 4)),
                              audio_speakers=int(config.get("CONFERENCE_AUDIO_SPEAKERS", 3)),
                              max_participants=int(config.get("CONFERENCE_MAX_PARTICIPANTS",
                                                              50)))

    # ---------------------------------------------------------------- which node

    def held_rooms(self) -> list[int]:
        with self.lock:
            return list(self.rooms)

    def pop_room(self, session_id: int) -> dict[str, Member]:
        room = self.rooms.pop(session_id, None)
        return room.members if room else {}

    def find_member(self, session_id: int, participant_id: str) -> Member | None:
        return self.member(session_id, participant_id)

    def member_reconnecting(self, session_id: int, participant_id: str) -> None:
        # A dropped socket ends its share at once, not when the grace period removes them:
        # everyone else's video stops holding a frozen screen first. A page that comes back
        # still sharing pins itself again (room.js sends screen_share after its offer); a
        # reload, which lost its screen, does not.
        self.end_share(session_id, participant_id)
        self.send_roster(session_id)  # the roster shows who is reconnecting (and sharing)

    def close(self) -> None:
        """Give up every claim and send every room's pages elsewhere (at exit)."""
        self.release_all_claims()

    # ---------------------------------------------------------------- engine callbacks

    def on_room_changed(self, room: str) -> None:
        self.send_peers(session_of(room))

    def on_send_limit(self, room: str, participant_id: str, profile: str) -> None:
        sid = self._sid(session_of(room), participant_id)
        if sid is not None:
            socketio.emit("send_profile", {"profile": profile}, to=sid, namespace=NAMESPACE)

    def on_video_wanted(self, room: str, participant_id: str, wanted: bool) -> None:
        """Nobody has been shown this member's video for a while (or somebody is about to
        be): their page stops (or starts again) sending it (call.js, `send_video`)."""
        sid = self._sid(session_of(room), participant_id)
        if sid is not None:  # reconnecting: the engine tells them again if it must
            socketio.emit("send_video", {"send": wanted}, to=sid, namespace=NAMESPACE)

    def on_connection_state(self, room: str, participant_id: str, state: str) -> None:
        session_id = session_of(room)
        key = (session_id, participant_id)
        if state == "closed":
            with self.lock:
                user_id = self.attending.pop(key, None)
            if user_id is not None:
                self._attend(session_id, user_id, AttendanceKind.LEAVE)
            return
        with self.lock:
            member = self.rooms.get(session_id, Room()).members.get(participant_id)
            if member is None:
                return
            join = state == "connected" and key not in self.attending
            if state == "connected":
                member.state = "connected"
                self.attending[key] = member.person.user_id
            elif state in ("failed", "disconnected"):
                member.state = "reconnecting"
            else:
                return
        if join:
            self._attend(session_id, member.person.user_id, AttendanceKind.JOIN)
        socketio.emit("peer_state", {"id": participant_id, "state": member.state},
                      to=socket_room(session_id), namespace=NAMESPACE)
        self.send_roster(session_id)

    def _attend(self, session_id: int, user_id: int, kind: AttendanceKind) -> None:
        """Record a join or leave now (engine callbacks run outside any request)."""
        with self.app.app_context(), unit_of_work():
            services.record_room_attendance(session_id, user_id, kind)

    # ---------------------------------------------------------------- room state

    def _sid(self, session_id: int, participant_id: str) -> str | None:
        with self.lock:
            member = self.rooms.get(session_id, Room()).members.get(participant_id)
            return member.sid if member is not None else None

    def member(self, session_id: int, participant_id: str) -> Member | None:
        with self.lock:
            return self.rooms.get(session_id, Room()).members.get(participant_id)

    def send_peers(self, session_id: int) -> None:
        """Tell each member which mids carry whom (the engine's last-N layout for them)."""
        with self.lock:
            members = dict(self.rooms.get(session_id, Room()).members)
        # One trip to the media loop for the whole room: this runs on every plan change
        # (up to every 50 ms tick) and a room holds up to 50 people.
        try:
            layouts = self.engine.layouts(room_id(session_id))
        except EngineError:
            layouts = {}
        for pid, member in members.items():
            if member.sid is None:
                continue
            layout = layouts.get(pid, {})
            peers = peers_seen_by(members, pid, layout)
            socketio.emit("peers", {"session_id": session_id, "self": pid, "peers": peers},
                          to=member.sid, namespace=NAMESPACE)

    def roster(self, session_id: int) -> dict[str, Any]:
        """Everyone in the room for every page: raised hands first (oldest first), then the
        hub, then the others by name."""
        with self.lock:
            room = self.rooms.get(session_id, Room())
            people = [{"id": pid, "name": m.person.display_name,
                       "moderator": m.person.moderator, "state": m.state,
                       "audio": m.audio, "video": m.video, "hand": m.hand_since is not None,
                       "muted": pid in room.muted, "sharing": pid == room.pinned,
                       "_hand": m.hand_since}
                      for pid, m in room.members.items()]
            slide = room.slide
        people.sort(key=lambda p: (p["_hand"] is None, p["_hand"] or 0, not p["moderator"],
                                   p["name"]))
        for person in people:
            del person["_hand"]
        return {"session_id": session_id, "people": people, "slide": slide}

    def send_roster(self, session_id: int) -> None:
        socketio.emit("roster", self.roster(session_id), to=socket_room(session_id),
                      namespace=NAMESPACE)

    # ---------------------------------------------------------------- sockets and members

    def is_joined(self, sid: str, person: services.RoomMember) -> bool:
        return self.joined_as(sid) == (person.session_id, person.participant_id)

    def is_removed(self, person: services.RoomMember) -> bool:
        with self.lock:
            return person.user_id in self.removed.get(person.session_id, set())

    def add_member(self, person: services.RoomMember, sid: str, profile: str) -> Offer:
        """Put the person in the room through this socket; returns the engine's offer.

        Joining again (a reload, a reconnect) replaces their previous connection, which the
        engine closes without a word: its attendance ends here, and the new connection's
        starts when it connects.
        """
        session_id, pid = person.session_id, person.participant_id
        room = room_id(session_id)
        self.engine.open_conference(room, self.plan())
        sdp = self.engine.join(room, pid, get_profile(profile), self.calls.server_ice())
        with self.lock:
            state = self.rooms.setdefault(session_id, Room())
            old = state.members.get(pid)
            if old is not None and old.sid and old.sid != sid:
                self.joined.pop(old.sid, None)
            state.members[pid] = Member(sid, profile, person=person)
            self.joined[sid] = (session_id, pid)
            ended = self.attending.pop((session_id, pid), None)
            muted = pid in state.muted
            if state.pinned == pid and (old is None or old.sid != sid):
                # Another page of theirs (a reload, a second tab) is not sharing yet: it
                # shares again itself if it does. (The engine unpinned the old connection.)
                state.pinned = None
            pinned = state.pinned == pid
            try:
                held = self.keep_claim(session_id)
            except DirectoryUnavailable:
                held = True  # the claim keeper claims it again once the directory is back
            if not held:
                self.joined.pop(sid, None)
                state.members.pop(pid, None)
                if not state.members:
                    self.rooms.pop(session_id, None)
        if ended is not None:
            self._attend(session_id, ended, AttendanceKind.LEAVE)
        if not held:
            self.engine.leave(room, pid)
            raise CallElsewhere(self.directory.owner(session_id))
        if muted:
            self.engine.set_muted(room, pid, True)
        if pinned:  # the same page joined again while sharing: its new connection is pinned
            self.engine.set_pinned(room, pid)
        self.start_claim_keeper()
        return Offer(room, sdp)

    def remove(self, session_id: int, participant_id: str) -> None:
        """Take a participant out of the room: engine (which reports the leave), everybody's
        view; the room's claim and plan go with its last member."""
        with self.lock:
            state = self.rooms.get(session_id)
            if state is not None:
                state.members.pop(participant_id, None)
                if state.pinned == participant_id:
                    state.pinned = None  # the engine unpins whoever leaves
                if not state.members:
                    self.rooms.pop(session_id, None)
                    self.release_claim(session_id)
                    state = None
            empty = state is None
        self.engine.leave(room_id(session_id), participant_id)
        if empty:
            self.engine.close_conference(room_id(session_id))
        socketio.emit("peer_state", {"id": participant_id, "state": "left"},
                      to=socket_room(session_id), namespace=NAMESPACE)
        self.send_peers(session_id)
        self.send_roster(session_id)

    def remove_in_app(self, session_id: int, participant_id: str, reason: str = "") -> None:
        """remove(), from a background thread (the engine reports the leave: no reason is
        recorded here)."""
        with self.app.app_context():
            self.remove(session_id, participant_id)

    def set_media(self, person: services.RoomMember, flags: dict[str, bool],
                  profile: str | None) -> None:
        """Camera/microphone flags, audio-only switch and profile of a member."""
        self.set_member_media(person.session_id, person.participant_id, flags, profile)

    # ---------------------------------------------------------------- the conference itself

    def set_hand(self, session_id: int, participant_id: str, raised: bool) -> None:
        with self.lock:
            member = self.member(session_id, participant_id)
            if member is None:
                return
            if not raised:
                member.hand_since = None
            elif member.hand_since is None:
                member.hand_since = time.monotonic()

    def set_muted(self, session_id: int, participant_id: str, muted: bool) -> None:
        """A moderator's mute: the engine stops forwarding their audio; their page is told."""
        self.engine.set_muted(room_id(session_id), participant_id, muted)
        with self.lock:
            room = self.rooms.get(session_id)
            if room is not None:
                (room.muted.add if muted else room.muted.discard)(participant_id)
        sid = self._sid(session_id, participant_id)
        if sid is not None:
            socketio.emit("muted", {"muted": muted}, to=sid, namespace=NAMESPACE)

    def share(self, session_id: int, participant_id: str, on: bool) -> bool:
        """A member starts (or stops) sharing their screen: while they share, everyone's
        video shows them first and they are never asked to pause it. One pin per room: a
        new share replaces the previous one, whose page is told to stop sending its screen
        ("share_taken_over"); stopping someone else's share changes nothing. Returns
        whether the room's pin changed."""
        replaced_sid, by = None, ""
        with self.lock:
            room = self.rooms.get(session_id)
            if room is None or participant_id not in room.members:
                return False
            if on:
                changed = room.pinned != participant_id
                replaced = room.members.get(room.pinned) if room.pinned is not None else None
                if changed and replaced is not None:
                    replaced_sid = replaced.sid
                room.pinned = participant_id
                by = room.members[participant_id].display_name
            else:
                changed = room.pinned == participant_id
                if changed:
                    room.pinned = None
            pinned = room.pinned
        if changed:
            self.engine.set_pinned(room_id(session_id), pinned)
        if replaced_sid is not None:
            socketio.emit("share_taken_over", {"session_id": session_id, "by": by},
                          to=replaced_sid, namespace=NAMESPACE)
        return changed

    def end_share(self, session_id: int, participant_id: str) -> bool:
        """The member's share ends without their asking (their socket went away): unpinned
        in the engine and the room. Returns whether they were sharing; the caller sends
        the roster, which tells every page."""
        with self.lock:
            room = self.rooms.get(session_id)
            if room is None or room.pinned != participant_id:
                return False
            room.pinned = None
        try:
            self.engine.set_pinned(room_id(session_id), None)
        except EngineError as exc:  # the engine is stopping: its rooms and pins go with it
            logger.warning("conference %s: %s not unpinned: %s", session_id, participant_id,
                           exc)
        return True

    def pinned(self, session_id: int) -> str | None:
        with self.lock:
            room = self.rooms.get(session_id)
            return room.pinned if room is not None else None

    def expel(self, session_id: int, participant_id: str) -> None:
        """A moderator removes a participant: out of the room, and not back in."""
        member = self.member(session_id, participant_id)
        if member is None:
            return
        with self.lock:
            self.removed.setdefault(session_id, set()).add(member.person.user_id)
            if member.sid is not None:
                self.joined.pop(member.sid, None)
        if member.sid is not None:
            socketio.emit("removed", {"session_id": session_id}, to=member.sid,
                          namespace=NAMESPACE)
            socketio.server.leave_room(member.sid, socket_room(session_id),
                                       namespace=NAMESPACE)
        self.remove(session_id, participant_id)

    def show_slide(self, session_id: int, slide: dict[str, Any] | None) -> None:
        """What every page shows as the current slide (None: no slide)."""
        with self.lock:
            room = self.rooms.get(session_id)
            if room is not None:
                room.slide = slide
        socketio.emit("slide", {"session_id": session_id, "slide": slide},
                      to=socket_room(session_id), namespace=NAMESPACE)

    def current_slide(self, session_id: int) -> dict[str, Any] | None:
        with self.lock:
            room = self.rooms.get(session_id)
            return room.slide if room is not None else None


def announce_deck(deck: ConferenceDeck) -> None:
    """Tell a session's room pages that a deck is ready (with the slide list) or refused
    (its uploader's page shows why). From whichever process ran the job: through the
    message queue when one is configured."""
    slides = [{"id": s.id, "position": s.position}
              for s in services.slides_of(deck.session_id)]
    try:
        socketio.emit("deck", {"session_id": deck.session_id,
                               "deck": services.deck_summary(deck), "slides": slides},
                      to=socket_room(deck.session_id), namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - the pages show it on their next load anyway
        logger.exception("conference %s: deck %s not announced", deck.session_id, deck.id)


def get_conference_hub(app: Flask | None = None) -> ConferenceHub:
    """The app's conference hub (created on first use, with the call hub's engine; it
    closes before the call hub, while the engine runs)."""
    return app_hub(app, "conference_hub", ConferenceHub)
