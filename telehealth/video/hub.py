"""The call hub: one per app, it holds the media engine and who is in which call.

The hub is what the /call namespace (events.py) and the call pages (views.py) share: which
node holds a consult's call, who is in it through which socket, and what to tell the
members when the engine reports a change. It takes no Socket.IO event itself; the
namespace parses and checks every event first (guard.py).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from flask import Flask

from telehealth import clock
from telehealth.extensions import db, socketio
from telehealth.video import services
from telehealth.video.claims import (
    ClaimedRooms,
    HeldMember,
    RoomKind,
    app_hub,
    lease_seconds,
    peers_seen_by,
)
from telehealth.video.directory import (
    DirectoryUnavailable,
    alive_seconds,
    directory_from_config,
    node_from_config,
)
from telehealth.video.engine import EngineError, IceServer, VideoEngine
from telehealth.video.guard import CallElsewhere
from telehealth.video.profiles import get_profile
from telehealth.video.turn import IceSettings, ice_servers

logger = logging.getLogger(__name__)

NAMESPACE = "/call"


def room_id(consult_id: int) -> str:
    return f"consult-{consult_id}"


def socket_room(consult_id: int) -> str:
    return f"call-{consult_id}"


@dataclass(frozen=True)
class Offer:
    """The engine's SDP offer for a member, and the engine room it is for."""

    room: str
    sdp: str


@dataclass
class Member(HeldMember):
    caller: services.Caller = field(kw_only=True)

    @property
    def display_name(self) -> str:
        return self.caller.display_name


class CallHub(ClaimedRooms):
    """One per app: its media engine, who is in which call, and through which socket."""

    kind = RoomKind("call of consult", "video-claims", NAMESPACE, "consult_id", room_id,
                    socket_room)

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.engine = VideoEngine(callbacks=self)
        self.lock = threading.RLock()
        self.members: dict[int, dict[str, Member]] = {}
        self.joined: dict[str, tuple[int, str]] = {}  # sid -> (consult id, participant id)
        # Which node holds each call (several processes); this hub is `node`.
        self.node = node_from_config(app.config)
        self.directory = directory_from_config(app.config)
        self.init_claims()
        # Every third of this, the keeper says this node is alive and refreshes its claims;
        # a call nobody held at looks two thirds of it apart is ended.
        self.alive_seconds = alive_seconds(lease_seconds(app.config))
        # Open calls no node held, by when the keeper first saw it (see end_orphaned_calls).
        self.unowned: dict[int, float] = {}

    def ice_settings(self) -> IceSettings:
        config = self.app.config
        return IceSettings(
            stun_urls=tuple(u for u in config.get("VIDEO_STUN_URLS", "").split(",") if u),
            turn_urls=tuple(u for u in config.get("VIDEO_TURN_URLS", "").split(",") if u),
            turn_secret=config.get("VIDEO_TURN_SECRET", ""),
            turn_ttl_seconds=int(config.get("VIDEO_TURN_TTL", 3600)),
        )

    def server_ice(self) -> list[IceServer]:
        servers = ice_servers(self.ice_settings(), "media-server", int(clock.now().timestamp()))
        return [IceServer(urls=list(s["urls"]),  # type: ignore[call-overload]
                          username=s.get("username"),  # type: ignore[arg-type]
                          credential=s.get("credential"))  # type: ignore[arg-type]
                for s in servers]

    # ---------------------------------------------------------------- which node

    def held_rooms(self) -> list[int]:
        with self.lock:
            return list(self.members)

    def after_keeper_round(self) -> None:
        """Every node that serves calls also ends the calls nobody holds."""
        self.end_orphaned_calls()

    def end_orphaned_calls(self) -> list[int]:
        """End the open calls that no live node has held, with nobody in them here, at
        looks two thirds of the alive time apart (the first look never ends one).

        Their owner died: nobody is left to end them. A live owner whose claim or alive key
        vanished (Redis restarted empty) writes them again within a third of that time.
        This node claims a call before ending it: a stalled owner that resumes then finds
        its claim taken and sends its pages away instead of serving an ended call.
        Returns the consults whose call was ended.
        """
        ended: list[int] = []
        now = time.monotonic()
        with self.app.app_context():
            try:
                unowned = {consult_id: self.unowned.get(consult_id, now)
                           for consult_id in services.open_call_consult_ids()
                           if consult_id not in self.members
                           and self.directory.owner(consult_id) is None}
                due = [consult_id for consult_id, since in sorted(unowned.items())
                       if since < now and now - since >= self.alive_seconds * 2 / 3
                       and self.directory.claim(consult_id, self.node.id) == self.node.id]
            except DirectoryUnavailable:
                return ended
            for consult_id in due:
                if consult_id in self.members:  # a page joined here meanwhile
                    continue
                if services.end_session(consult_id) is not None:
                    logger.info("call of consult %s ended: no live node holds it",
                                consult_id)
                    ended.append(consult_id)
            db.session.commit()
        self.unowned = {c: since for c, since in unowned.items() if c not in due}
        return ended

    def pop_room(self, consult_id: int) -> dict[str, Member]:
        return self.members.pop(consult_id, {})

    def find_member(self, consult_id: int, participant_id: str) -> Member | None:
        return self.members.get(consult_id, {}).get(participant_id)

    def close(self) -> None:
        """Give up every claim, send every call's pages elsewhere, close the engine (at
        exit and on SIGTERM): the calls move at once, without waiting for the lease."""
        self.release_all_claims()
        self.engine.shutdown()

    # ---------------------------------------------------------------- engine callbacks

    def on_room_changed(self, room: str) -> None:
        self.send_peers(int(room.removeprefix("consult-")))

    def on_send_limit(self, room: str, participant_id: str, profile: str) -> None:
        # The page lowers (or raises) its camera and encoder to what its receivers take.
        consult_id = int(room.removeprefix("consult-"))
        with self.lock:
            member = self.members.get(consult_id, {}).get(participant_id)
            sid = member.sid if member is not None else None
        if sid is not None:
            socketio.emit("send_profile", {"profile": profile}, to=sid, namespace=NAMESPACE)

    def on_video_wanted(self, room: str, participant_id: str, wanted: bool) -> None:
        """Only conference rooms pause unwatched video; a consult call sends everyone's."""

    def on_connection_state(self, room: str, participant_id: str, state: str) -> None:
        consult_id = int(room.removeprefix("consult-"))
        with self.lock:
            member = self.members.get(consult_id, {}).get(participant_id)
            if member is None:
                return
            if state == "connected":
                member.state = "connected"
            elif state in ("failed", "disconnected"):
                member.state = "reconnecting"
            else:
                return
        socketio.emit("peer_state", {"id": participant_id, "state": member.state},
                      to=socket_room(consult_id), namespace=NAMESPACE)

    # ---------------------------------------------------------------- room state

    def send_peers(self, consult_id: int) -> None:
        """Tell each member who else is in the call and which mids carry them."""
        with self.lock:
            members = dict(self.members.get(consult_id, {}))
        for pid, member in members.items():
            if member.sid is None:
                continue
            try:
                layout = self.engine.layout(room_id(consult_id), pid)
            except EngineError:
                layout = {}
            peers = peers_seen_by(members, pid, layout)
            socketio.emit("peers", {"consult_id": consult_id, "self": pid, "peers": peers},
                          to=member.sid, namespace=NAMESPACE)

    def remove(self, consult_id: int, participant_id: str, reason: str) -> None:
        """Take a participant out of the call: engine, records, everybody's view."""
        with self.lock:
            room_members = self.members.get(consult_id, {})
            room_members.pop(participant_id, None)
            if not room_members:
                self.members.pop(consult_id, None)
                # Under the lock: a join inserting a member now claims again after this.
                self.release_claim(consult_id)
        empty = self.engine.leave(room_id(consult_id), participant_id)
        services.record_leave(consult_id, participant_id, reason)
        if empty:
            services.end_session(consult_id)
        db.session.commit()
        socketio.emit("peer_state", {"id": participant_id, "state": "left"},
                      to=socket_room(consult_id), namespace=NAMESPACE)
        self.send_peers(consult_id)

    def remove_in_app(self, consult_id: int, participant_id: str, reason: str) -> None:
        """remove(), from a background thread."""
        with self.app.app_context():
            self.remove(consult_id, participant_id, reason)

    # ---------------------------------------------------------------- sockets and members

    def room(self, caller: services.Caller) -> str:
        """The engine's room for the caller's call."""
        return room_id(caller.consult_id)

    def is_joined(self, sid: str, caller: services.Caller) -> bool:
        """Whether this socket joined the caller's call as the caller."""
        return self.joined_as(sid) == (caller.consult_id, caller.participant_id)

    def add_member(self, caller: services.Caller, sid: str, profile: str) -> Offer:
        """Put the caller in the call through this socket; returns the engine's offer.

        Joining again (a reload, the same socket or a new one) replaces the caller's
        previous connection: the engine closes it, and the old socket no longer speaks
        for them.
        """
        room = room_id(caller.consult_id)
        sdp = self.engine.join(room, caller.participant_id, get_profile(profile),
                               self.server_ice())
        with self.lock:
            room_members = self.members.setdefault(caller.consult_id, {})
            old = room_members.get(caller.participant_id)
            if old is not None and old.sid and old.sid != sid:
                self.joined.pop(old.sid, None)  # the same person from a new page
            room_members[caller.participant_id] = Member(sid, profile, caller=caller)
            self.joined[sid] = (caller.consult_id, caller.participant_id)
            # The call may have emptied (and its claim been released) since the page
            # asked who holds it.
            try:
                held = self.keep_claim(caller.consult_id)
            except DirectoryUnavailable:
                held = True  # the claim keeper claims it again once the directory is back
            if not held:
                self.joined.pop(sid, None)
                room_members.pop(caller.participant_id, None)
                if not room_members:
                    self.members.pop(caller.consult_id, None)
        if not held:
            self.engine.leave(room, caller.participant_id)
            raise CallElsewhere(self.directory.owner(caller.consult_id))
        self.start_claim_keeper()
        return Offer(room, sdp)

    def set_media(self, caller: services.Caller, flags: dict[str, bool],
                  profile: str | None) -> None:
        """Camera/microphone flags, audio-only switch and profile of a member."""
        self.set_member_media(caller.consult_id, caller.participant_id, flags, profile)


def get_hub(app: Flask | None = None) -> CallHub:
    """The app's call hub (created on first use). Peer connections are closed and claims
    given up at shutdown, not left to the OS and to the directory's expiry."""
    return app_hub(app, "video_hub", CallHub)


def close_on_sigterm(app: Flask) -> None:
    """On SIGTERM, move this process's calls at once (claims given up, members sent
    elsewhere), then do what SIGTERM did before: the server's own graceful stop, or the
    end of the process. Call from the main thread of the process that serves the app
    (`wsgi.py`); a server that forks after loading the app (`--preload`) resets it."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        shutdown(app)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def shutdown(app: Flask) -> None:
    """Close every call of this app (at exit, and after tests)."""
    hub = app.extensions.get("video_hub")
    if hub is not None:
        hub.close()


