"""Holding rooms on one node: what the call hub and the conference hub share.

A room (a consult's call, a conference session's room) lives in one process; the directory
(directory.py) says which. A hub that serves rooms claims them, keeps the claims of the
rooms it serves fresh from a keeper thread (which also writes this node's "alive" key),
hands a room's members over when its claim was lost, and gives every claim up at exit.
This is that logic once; each hub says which rooms it holds, how to send their members
away, and what its log lines call a room.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app
from flask_babel import gettext as _

from telehealth.errors import Unavailable
from telehealth.extensions import socketio
from telehealth.video.directory import (
    DEFAULT_TTL_SECONDS,
    CallDirectory,
    DirectoryUnavailable,
    Node,
    alive_seconds,
    is_node_url,
)
from telehealth.video.engine import EngineError
from telehealth.video.profiles import get_profile

logger = logging.getLogger(__name__)


def lease_seconds(config: Any) -> float:
    """The directory's lease (VIDEO_DIRECTORY_TTL_SECONDS), its default when unset."""
    return float(config.get("VIDEO_DIRECTORY_TTL_SECONDS") or DEFAULT_TTL_SECONDS)


def _named(prefix: str) -> Callable[[int], str]:
    return lambda room_key: f"{prefix}-{room_key}"


@dataclass(frozen=True)
class RoomKind:
    """How a hub names its rooms: in log lines, in the engine, to Socket.IO and its pages."""

    label: str  # what log lines call one room, before its key ("call of consult")
    keeper_name: str  # the claim keeper thread's name
    namespace: str  # the Socket.IO namespace of the hub's pages
    key_name: str  # what messages to the pages call the room's key ("consult_id")
    engine_room: Callable[[int], str]  # the media engine's room
    socket_room: Callable[[int], str]  # the Socket.IO room of its members


@dataclass
class HeldMember:
    """What both hubs keep of a member: its socket (None: dropped, waiting for a
    reconnect), its profile, its state and its camera/microphone flags. Each hub's member
    adds who they are, by keyword."""

    sid: str | None
    profile: str
    state: str = "joining"
    audio: bool = True
    video: bool = True

    @property
    def display_name(self) -> str:
        raise NotImplementedError


def peers_seen_by(members: Mapping[str, HeldMember], participant_id: str,
                  layout: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The others in a room as one member's page lists them ("peers"): who, their state
    and flags, and which of its mids carry their audio and video (the engine's `layout`
    for that member)."""
    return [{"id": other_id, "name": other.display_name, "state": other.state,
             "audio": other.audio, "video": other.video,
             "audio_mid": layout.get(other_id, {}).get("audio"),
             "video_mid": layout.get(other_id, {}).get("video")}
            for other_id, other in members.items() if other_id != participant_id]


Hub = TypeVar("Hub", bound="ClaimedRooms")

# Reentrant: the conference hub, made under it, gets the call hub (made under it too).
_HUBS_LOCK = threading.RLock()


def app_hub(app: Flask | None, key: str, make: Callable[[Flask], Hub]) -> Hub:
    """The app's hub kept in `app.extensions[key]`, made on first use.

    Its close (claims given up, members sent elsewhere) is registered with atexit when it
    is made: atexit runs the last registered first, so a hub made on top of another (the
    conference hub on the call hub's engine) closes while the one below still runs.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _HUBS_LOCK:
        hub: Hub | None = app.extensions.get(key)
        if hub is None:
            hub = app.extensions[key] = make(app)
            atexit.register(hub.close)
    return hub


class ClaimedRooms:
    """Mixin of a hub whose rooms are claimed in a directory, one node per room.

    The hub sets `node`, `directory`, `lock` (an RLock), `engine`, `app` and `joined`
    (socket id -> (room key, participant id)), calls `init_claims()`, and implements
    `held_rooms`, `pop_room`, `find_member`, `remove_in_app` and `close`, and says how
    its rooms are named (`kind`); `after_keeper_round` and `member_reconnecting` are its
    hooks. Its members are sent
    away, and its dropped sockets handled, here.
    """

    app: Any
    engine: Any
    node: Node
    directory: CallDirectory
    lock: threading.RLock
    kind = RoomKind("room", "room-claims", "/", "room", _named("room"), _named("room"))
    joined: dict[str, tuple[int, str]]

    def init_claims(self) -> None:
        self.closing = threading.Event()  # no new claim from now on (shutting down)
        self.keeper_stop = threading.Event()  # set by close and stop_claim_keeper
        self.claim_keeper: threading.Thread | None = None

    # ---------------------------------------------------------------- the hub's part

    def held_rooms(self) -> list[int]:
        """The rooms with members on this node (their claims are kept)."""
        raise NotImplementedError

    def pop_room(self, room_key: int) -> dict[str, Any]:
        """Take the room off this hub (under the lock); returns its members by id."""
        raise NotImplementedError

    def find_member(self, room_key: int, participant_id: str) -> HeldMember | None:
        """The room's member (under the lock), if it has one of that id."""
        raise NotImplementedError

    def remove_in_app(self, room_key: int, participant_id: str, reason: str) -> None:
        """Take a participant out of the room, from a background thread."""
        raise NotImplementedError

    def close(self) -> None:
        """Give up every claim and send every room's pages elsewhere (at exit)."""
        raise NotImplementedError

    def after_keeper_round(self) -> None:
        """More work for each keeper round, after the claims (none by default)."""

    def member_reconnecting(self, room_key: int, participant_id: str) -> None:
        """A member's socket dropped and they may come back: more news for the room's
        pages than their "peer_state" (none by default)."""

    # ---------------------------------------------------------------- members and sockets

    def move_members(self, room_key: int, node_url: str | None) -> None:
        """Close this node's side of a room and tell its pages to rejoin at `node_url`
        (None: they ask the app where the room lives now)."""
        with self.lock:
            members = self.pop_room(room_key)
            for member in members.values():
                if member.sid is not None:
                    self.joined.pop(member.sid, None)
        moved = {self.kind.key_name: room_key, "node_url": node_url}
        # The pages first: they are what people wait on. Closing this node's side of each
        # connection (below) waits for the engine's loop, which after a stall (a process
        # resumed from SIGSTOP) is busy catching up, and the page would only hear late.
        # To each of our members' sockets, not to the room's: the owner's members are in a
        # Socket.IO room of that name too.
        for member in members.values():
            if member.sid is not None:
                socketio.server.leave_room(member.sid, self.kind.socket_room(room_key),
                                           namespace=self.kind.namespace)
                socketio.emit("call_moved", moved, to=member.sid,
                              namespace=self.kind.namespace)
        for participant_id in members:
            try:
                self.engine.leave(self.kind.engine_room(room_key), participant_id)
            except EngineError as exc:
                logger.warning("%s %s: %s not closed: %s", self.kind.label, room_key,
                               participant_id, exc)

    def set_member_media(self, room_key: int, participant_id: str, flags: dict[str, bool],
                         profile: str | None) -> None:
        """Camera/microphone flags, audio-only switch and profile of a member."""
        room = self.kind.engine_room(room_key)
        if "receive_video" in flags:
            self.engine.set_receive_video(room, participant_id, flags["receive_video"])
        if profile is not None:
            self.engine.set_profile(room, participant_id, get_profile(profile))
        with self.lock:
            member = self.find_member(room_key, participant_id)
            if member is not None:
                member.audio = flags.get("audio", member.audio)
                member.video = flags.get("video", member.video)
                member.profile = profile or member.profile

    def joined_as(self, sid: str) -> tuple[int, str] | None:
        """(room key, participant id) the socket joined as, if any."""
        with self.lock:
            return self.joined.get(sid)

    def forget_socket(self, sid: str) -> None:
        """The socket left its room (the member itself is removed by the hub's `remove`)."""
        with self.lock:
            self.joined.pop(sid, None)

    def socket_gone(self, sid: str, closed_by_us: bool) -> None:
        """A socket disconnected: its member waits for a reconnect, or leaves at once when
        we closed the socket ourselves (the room ended, it flooded us, it was removed)."""
        with self.lock:
            joined = self.joined.pop(sid, None)
            member = self.find_member(*joined) if joined is not None else None
            if member is not None and member.sid == sid:
                member.sid, member.state = None, "reconnecting"
            else:
                member = None
        if joined is None or member is None:
            return
        room_key, participant_id = joined
        if closed_by_us:
            # No grace period in which media would keep flowing. In its own thread: this
            # may run inside the commit that ended the room.
            socketio.start_background_task(self.remove_in_app, room_key, participant_id,
                                           "disconnected")
            return
        socketio.emit("peer_state", {"id": participant_id, "state": "reconnecting"},
                      to=self.kind.socket_room(room_key), namespace=self.kind.namespace)
        self.member_reconnecting(room_key, participant_id)
        socketio.start_background_task(self.forget_after_grace, room_key, participant_id,
                                       member)

    def forget_after_grace(self, room_key: int, participant_id: str,
                           dropped: HeldMember) -> None:
        """After a dropped socket: remove the participant unless they came back in time."""
        time.sleep(float(self.app.config.get("VIDEO_RECONNECT_GRACE_SECONDS", 20)))
        with self.lock:
            # Not when they joined again meanwhile (a new member), even if that dropped too.
            gone = (self.find_member(room_key, participant_id) is dropped
                    and dropped.sid is None)
        if gone:
            self.remove_in_app(room_key, participant_id, "dropped")

    # ---------------------------------------------------------------- which node

    def owner(self, room_key: int) -> str:
        """The node holding the room: this one when nobody held it (unless this node is
        shutting down)."""
        if self.closing.is_set():
            raise Unavailable(_("This server is restarting; please try again."))
        try:
            return self.directory.claim(room_key, self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("%s %s: directory unavailable: %s", self.kind.label, room_key, exc)
            raise Unavailable(_("Calls are unavailable for a moment; please try again.")) \
                from exc

    def socket_url(self, room_key: int) -> str | None:
        """Where the room's page opens its socket: the owning node's URL (None: the page's
        own origin)."""
        owner = self.owner(room_key)
        # Every node that serves rooms looks after their claims.
        self.start_claim_keeper()
        if owner == self.node.id:
            return self.node.url
        if is_node_url(owner):
            return owner
        # Another process holds it but has no public URL (VIDEO_NODE_URL unset there).
        logger.error("%s %s is held by %s, which no page can reach", self.kind.label,
                     room_key, owner)
        raise Unavailable(_("This call is held by a server that cannot be reached; "
                            "please try again in a minute."))

    def keep_claim(self, room_key: int) -> bool:
        """Refresh this node's claim on a room with members (claim it again if it lapsed)."""
        if self.directory.refresh(room_key, self.node.id):
            return True
        return self.directory.claim(room_key, self.node.id) == self.node.id

    def release_claim(self, room_key: int) -> None:
        """The room emptied: another node may hold it next."""
        try:
            self.directory.release(room_key, self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("%s %s: claim not released (it will expire): %s", self.kind.label,
                           room_key, exc)

    def evict(self, room_key: int) -> None:
        """Stop serving a room here without ending it, and send its pages to its owner.

        No record is written: the room goes on on the node that holds it now.
        """
        try:
            owner = self.directory.owner(room_key)
        except DirectoryUnavailable:
            owner = None
        self.move_members(room_key, owner if owner and is_node_url(owner) else None)

    def release_all_claims(self) -> None:
        """Give up every claim and send every room's pages elsewhere (at exit): the rooms
        move at once, without waiting for the lease."""
        self.closing.set()
        self.keeper_stop.set()
        for room_key in self.held_rooms():
            self.release_claim(room_key)
            if self.engine.running:
                self.move_members(room_key, None)

    # ---------------------------------------------------------------- the keeper

    def keeper_interval(self) -> float:
        """Seconds between the keeper's rounds. A claim counts only while its node's
        "alive" key does (a few seconds, shorter than the lease): a round every third of
        that, or another node would take our rooms between two refreshes."""
        return alive_seconds(lease_seconds(self.app.config)) / 3

    def start_claim_keeper(self) -> None:
        """While rooms have members here, keep their claims fresh (one thread per hub)."""
        with self.lock:
            if self.claim_keeper is not None and self.claim_keeper.is_alive():
                return
            self.claim_keeper = threading.Thread(target=self._keep_claims, daemon=True,
                                                 name=self.kind.keeper_name)
            self.claim_keeper.start()

    def _keep_claims(self) -> None:
        interval = self.keeper_interval()
        while not self.keeper_stop.is_set():
            self.keep_claims_once()
            self.keeper_stop.wait(interval)

    def stop_claim_keeper(self) -> None:
        """Stop the keeper (it starts again with the next room page or join)."""
        with self.lock:
            keeper = self.claim_keeper
            self.keeper_stop.set()
        if keeper is not None:
            keeper.join(10)
        with self.lock:
            if not self.closing.is_set():
                self.keeper_stop.clear()

    def keep_claims_once(self) -> None:
        """One round of the keeper: this node is alive, and its rooms' claims are fresh (or
        their members sent where the room lives now)."""
        try:
            self.directory.heartbeat(self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("node %s: heartbeat not written: %s", self.node.id, exc)
        for room_key in self.held_rooms():
            try:
                if not self.keep_claim(room_key):
                    # Another node took the room while our claim had lapsed (Redis
                    # restarted, or this process stalled): stop serving it here at once,
                    # or each side would sit alone in its own half of the room.
                    logger.error("%s %s: node %s lost its claim; moving its members",
                                 self.kind.label, room_key, self.node.id)
                    self.evict(room_key)
            except DirectoryUnavailable as exc:
                logger.warning("%s %s: claim not refreshed: %s", self.kind.label, room_key,
                               exc)
        try:
            self.after_keeper_round()
        except Exception:  # the keeper must go on keeping claims
            logger.exception("%s claims: the keeper's extra work failed", self.kind.label)
