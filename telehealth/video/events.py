"""Signaling for calls: the /call Socket.IO namespace.

Every handler parses its payload, checks that the sender may be in that consult's call,
then calls the media engine. Anything refused gets a `call_error` event back and never
reaches the engine; flooding or oversized messages also end the connection.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, request, session
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import disconnect, emit, join_room, leave_room

from telehealth import clock
from telehealth.errors import InvalidInput, ServiceError, Unavailable
from telehealth.extensions import db, socketio
from telehealth.security.sessions import socket_session_alive, user_room
from telehealth.video import services
from telehealth.video.directory import (
    DirectoryUnavailable,
    directory_from_config,
    is_node_url,
    node_from_config,
)
from telehealth.video.engine import EngineError, IceServer, VideoEngine
from telehealth.video.profiles import DEFAULT_PROFILE, PROFILES, get_profile
from telehealth.video.turn import IceSettings, ice_servers

logger = logging.getLogger(__name__)

NAMESPACE = "/call"
# Largest payload (JSON characters) each event may carry; a browser's answer with eight
# m-lines is about 8-12 kB.
MAX_PAYLOAD = {"join": 1_000, "answer": 40_000, "candidate": 2_000, "leave": 500,
               "media": 500, "chat": 8_500, "offer": 40_000, "keepalive": 200}
RATE_PER_SECOND = 20.0
RATE_BURST = 60.0
GUEST_SESSION_KEY = "video_invite_id"


class Refused(Exception):
    """A refused event; `drop` also ends the sender's connection."""

    def __init__(self, message: str, drop: bool = False,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.drop, self.details = message, drop, details or {}


class CallElsewhere(Refused):
    """The call is held by another node: this socket must not start a second one here."""

    def __init__(self, owner: str) -> None:
        super().__init__(_("This call is held by another server: reload the page to reach it."),
                         details={"moved": True,
                                  "node_url": owner if is_node_url(owner) else None})


def room_id(consult_id: int) -> str:
    return f"consult-{consult_id}"


def socket_room(consult_id: int) -> str:
    return f"call-{consult_id}"


@dataclass
class Member:
    caller: services.Caller
    sid: str | None
    profile: str
    state: str = "joining"
    audio: bool = True
    video: bool = True


@dataclass
class Bucket:
    tokens: float = RATE_BURST
    at: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.at) * RATE_PER_SECOND)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class CallHub:
    """One per app: its media engine, who is in which call, and through which socket."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.engine = VideoEngine(callbacks=self)
        self.lock = threading.RLock()
        self.members: dict[int, dict[str, Member]] = {}
        self.joined: dict[str, tuple[int, str]] = {}  # sid -> (consult id, participant id)
        self.buckets: dict[str, Bucket] = {}
        # Handlers run in a thread each; one socket's events are handled one at a time so a
        # quick "leave" then "join" cannot cross.
        self.socket_locks: dict[str, threading.Lock] = {}
        # Which node holds each call (several processes); this hub is `node`.
        self.node = node_from_config(app.config)
        self.directory = directory_from_config(app.config)
        self.closing = threading.Event()
        self.claim_keeper: threading.Thread | None = None

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

    def owner(self, consult_id: int) -> str:
        """The node holding the consult's call: this one when nobody held it."""
        try:
            return self.directory.claim(consult_id, self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("call directory unavailable for consult %s: %s", consult_id, exc)
            raise Unavailable(_("Calls are unavailable for a moment; please try again.")) \
                from exc

    def socket_url(self, consult_id: int) -> str | None:
        """Where a call page opens its socket: the owning node's URL (None: the page's own)."""
        owner = self.owner(consult_id)
        if owner == self.node.id:
            return self.node.url
        if is_node_url(owner):
            return owner
        # Another process holds it but has no public URL (VIDEO_NODE_URL unset there).
        logger.error("call of consult %s is held by %s, which no page can reach", consult_id,
                     owner)
        raise Unavailable(_("This call is held by a server that cannot be reached; "
                            "please try again in a minute."))

    def keep_claim(self, consult_id: int) -> bool:
        """Refresh this node's claim on a call with members (claim it again if it lapsed)."""
        if self.directory.refresh(consult_id, self.node.id):
            return True
        return self.directory.claim(consult_id, self.node.id) == self.node.id

    def start_claim_keeper(self) -> None:
        """While calls have members here, keep their claims fresh (one thread per hub)."""
        with self.lock:
            if self.claim_keeper is not None and self.claim_keeper.is_alive():
                return
            self.claim_keeper = threading.Thread(target=self._keep_claims, daemon=True,
                                                 name="video-claims")
            self.claim_keeper.start()

    def _keep_claims(self) -> None:
        interval = float(self.app.config.get("VIDEO_DIRECTORY_TTL_SECONDS", 30)) / 3
        while not self.closing.wait(interval):
            with self.lock:
                consult_ids = list(self.members)
            for consult_id in consult_ids:
                try:
                    if not self.keep_claim(consult_id):
                        # Another node took the call while our claim had lapsed (Redis
                        # restarted, or this process stalled): its pages now go there.
                        logger.error("call of consult %s: node %s lost its claim", consult_id,
                                     self.node.id)
                except DirectoryUnavailable as exc:
                    logger.warning("call of consult %s: claim not refreshed: %s", consult_id,
                                   exc)

    def release_claim(self, consult_id: int) -> None:
        """The call emptied: another node may hold its next one."""
        try:
            self.directory.release(consult_id, self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("call of consult %s: claim not released (it will expire): %s",
                           consult_id, exc)

    def close(self) -> None:
        """Give up every claim and close every call of this node (at exit)."""
        self.closing.set()
        with self.lock:
            consult_ids = list(self.members)
        for consult_id in consult_ids:
            self.release_claim(consult_id)
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
            peers = [{"id": other_id, "name": other.caller.display_name, "state": other.state,
                      "audio": other.audio, "video": other.video,
                      "audio_mid": layout.get(other_id, {}).get("audio"),
                      "video_mid": layout.get(other_id, {}).get("video")}
                     for other_id, other in members.items() if other_id != pid]
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

    def forget_after_grace(self, consult_id: int, participant_id: str, sid: str) -> None:
        """After a dropped socket: remove the participant unless they came back in time."""
        time.sleep(float(self.app.config.get("VIDEO_RECONNECT_GRACE_SECONDS", 20)))
        with self.lock:
            member = self.members.get(consult_id, {}).get(participant_id)
            gone = member is not None and member.sid is None
        if gone:
            self.remove_in_app(consult_id, participant_id, "dropped")


def get_hub(app: Flask | None = None) -> CallHub:
    """The app's call hub (created on first use)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _HUB_LOCK:
        hub = app.extensions.get("video_hub")
        if hub is None:
            hub = app.extensions["video_hub"] = CallHub(app)
            # Peer connections are closed and claims given up at shutdown, not left to the
            # OS and to the directory's expiry.
            atexit.register(hub.close)
    return hub  # type: ignore[no-any-return]


_HUB_LOCK = threading.Lock()


def _sid() -> str:
    return request.sid  # type: ignore[attr-defined,no-any-return]


def _caller(data: dict[str, Any]) -> services.Caller:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return services.caller_for(user, session.get(GUEST_SESSION_KEY), data.get("consult_id"))


def _joined_caller(hub: CallHub, data: dict[str, Any]) -> services.Caller:
    caller = _caller(data)
    with hub.lock:
        if hub.joined.get(_sid()) != (caller.consult_id, caller.participant_id):
            raise Refused(_("You have not joined this call."))
    return caller


def handler(event: str) -> Callable[[Callable[[CallHub, dict[str, Any]], None]],
                                    Callable[[Any], None]]:
    """Register a /call event with the checks every event shares."""

    def wrap(func: Callable[[CallHub, dict[str, Any]], None]) -> Callable[[Any], None]:
        @functools.wraps(func)
        def run(data: Any = None) -> None:
            hub = get_hub()
            with hub.lock:
                socket_lock = hub.socket_locks.setdefault(_sid(), threading.Lock())
            with socket_lock:
                run_checked(hub, data)

        def run_checked(hub: CallHub, data: Any) -> None:
            try:
                if not session.get(GUEST_SESSION_KEY) and not socket_session_alive():
                    # Signed out, timed out, or the session was ended elsewhere.
                    raise Refused(_("Your session has ended; please sign in again."),
                                  drop=True)
                with hub.lock:
                    bucket = hub.buckets.setdefault(_sid(), Bucket())
                    allowed = bucket.take()
                if not allowed:
                    raise Refused(_("Too many messages; the connection is closed."), drop=True)
                try:
                    size = len(json.dumps(data))
                except (TypeError, ValueError):
                    size = MAX_PAYLOAD[event] + 1
                if size > MAX_PAYLOAD[event]:
                    raise Refused(_("The message is too large."), drop=True)
                if not isinstance(data, dict):
                    raise InvalidInput(_("The message is not understood."))
                func(hub, data)
                db.session.commit()
            except (Refused, ServiceError, EngineError) as exc:
                db.session.rollback()
                message = exc.message if isinstance(exc, Refused | ServiceError) else str(exc)
                drop = isinstance(exc, Refused) and exc.drop
                details = exc.details if isinstance(exc, Refused) else {}
                logger.info("call event %s refused for %s: %s", event, _sid(), message)
                emit("call_error", {**details, "event": event, "message": message})
                if drop:
                    disconnect()
            except Exception:
                db.session.rollback()
                logger.exception("call event %s failed", event)
                emit("call_error", {"event": event,
                                    "message": _("Something went wrong on our side.")})

        socketio.on_event(event, run, namespace=NAMESPACE)
        return run

    return wrap


@socketio.on("connect", namespace=NAMESPACE)
def on_connect(auth: Any = None) -> bool:
    """Only signed-in users and guests holding a redeemed invite may open the socket."""
    if session.get(GUEST_SESSION_KEY) and not current_user.is_authenticated:
        return True
    if not socket_session_alive():
        return False
    # Signing out or a change of role disconnects every socket in the user's room.
    join_room(user_room(current_user.id))
    return True


@socketio.on("disconnect", namespace=NAMESPACE)
def on_disconnect(reason: Any = None) -> None:
    hub = get_hub()
    sid = _sid()
    with hub.lock:
        hub.buckets.pop(sid, None)
        hub.socket_locks.pop(sid, None)
        joined = hub.joined.pop(sid, None)
        member = None
        if joined is not None:
            member = hub.members.get(joined[0], {}).get(joined[1])
            if member is not None and member.sid == sid:
                member.sid, member.state = None, "reconnecting"
    if joined is None or member is None:
        return
    consult_id, participant_id = joined
    if reason == socketio.server.reason.SERVER_DISCONNECT:
        # We closed this socket ourselves (the session ended, or it flooded us): no grace
        # period in which media would keep flowing. In its own thread: this may run inside
        # the commit that ended the session.
        socketio.start_background_task(hub.remove_in_app, consult_id, participant_id,
                                       "disconnected")
        return
    socketio.emit("peer_state", {"id": participant_id, "state": "reconnecting"},
                  to=socket_room(consult_id), namespace=NAMESPACE)
    socketio.start_background_task(hub.forget_after_grace, consult_id, participant_id, sid)


@handler("join")
def on_join(hub: CallHub, data: dict[str, Any]) -> None:
    caller = _caller(data)
    profile_name = data.get("profile", DEFAULT_PROFILE)
    if profile_name not in PROFILES:
        raise InvalidInput(_("Unknown quality profile."))
    sid = _sid()
    with hub.lock:
        previous = hub.joined.get(sid)
    if previous is not None and previous != (caller.consult_id, caller.participant_id):
        raise Refused(_("Leave your other call first."))
    # A page loaded before the call moved (or opened on the wrong node) must not start a
    # second call here: the participants would never see each other.
    owner = hub.owner(caller.consult_id)
    if owner != hub.node.id:
        raise CallElsewhere(owner)
    offer = hub.engine.join(room_id(caller.consult_id), caller.participant_id,
                            get_profile(profile_name), hub.server_ice())
    with hub.lock:
        room_members = hub.members.setdefault(caller.consult_id, {})
        old = room_members.get(caller.participant_id)
        if old is not None and old.sid and old.sid != sid:
            hub.joined.pop(old.sid, None)  # the same person from a new page
        room_members[caller.participant_id] = Member(caller, sid, profile_name)
        hub.joined[sid] = (caller.consult_id, caller.participant_id)
        # The call may have emptied (and its claim been released) since the check above.
        try:
            held = hub.keep_claim(caller.consult_id)
        except DirectoryUnavailable:
            held = True  # the claim keeper claims it again once the directory is back
        if not held:
            hub.joined.pop(sid, None)
            room_members.pop(caller.participant_id, None)
            if not room_members:
                hub.members.pop(caller.consult_id, None)
    if not held:
        hub.engine.leave(room_id(caller.consult_id), caller.participant_id)
        raise CallElsewhere(hub.owner(caller.consult_id))
    hub.start_claim_keeper()
    services.record_join(caller, profile_name)
    join_room(socket_room(caller.consult_id))
    user_key = caller.participant_id
    send_profile = hub.engine.send_limit(room_id(caller.consult_id), caller.participant_id)
    emit("offer", {"consult_id": caller.consult_id, "type": "offer", "sdp": offer,
                   "profile": profile_name, "send_profile": send_profile,
                   "self": caller.participant_id,
                   "ice_servers": ice_servers(hub.ice_settings(), user_key,
                                              int(clock.now().timestamp()))})
    emit("peer_state", {"id": caller.participant_id, "state": "joining"},
         to=socket_room(caller.consult_id), include_self=False)
    hub.send_peers(caller.consult_id)


@handler("answer")
def on_answer(hub: CallHub, data: dict[str, Any]) -> None:
    caller = _joined_caller(hub, data)
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise InvalidInput(_("The answer is not valid SDP."))
    hub.engine.answer(room_id(caller.consult_id), caller.participant_id, sdp)


@handler("offer")
def on_offer(hub: CallHub, data: dict[str, Any]) -> None:
    _joined_caller(hub, data)
    # The server makes every offer; a client that wants a fresh connection joins again.
    raise InvalidInput(_("The server makes the offers; join the call again to reconnect."))


@handler("candidate")
def on_candidate(hub: CallHub, data: dict[str, Any]) -> None:
    caller = _joined_caller(hub, data)
    candidate, mid, index = data.get("candidate"), data.get("sdpMid"), data.get("sdpMLineIndex")
    if (not isinstance(candidate, str) or not (mid is None or isinstance(mid, str))
            or not (index is None or isinstance(index, int))):
        raise InvalidInput(_("The ICE candidate is not valid."))
    hub.engine.add_candidate(room_id(caller.consult_id), caller.participant_id, candidate,
                             mid, index)


@handler("leave")
def on_leave(hub: CallHub, data: dict[str, Any]) -> None:
    caller = _joined_caller(hub, data)
    with hub.lock:
        hub.joined.pop(_sid(), None)
    leave_room(socket_room(caller.consult_id))
    hub.remove(caller.consult_id, caller.participant_id, "left")
    emit("left", {"consult_id": caller.consult_id})


@handler("media")
def on_media(hub: CallHub, data: dict[str, Any]) -> None:
    """Camera/microphone state, audio-only switch and quality profile of the sender."""
    caller = _joined_caller(hub, data)
    room = room_id(caller.consult_id)
    flags = {k: data[k] for k in ("audio", "video", "receive_video") if k in data}
    if any(not isinstance(v, bool) for v in flags.values()):
        raise InvalidInput(_("The media state is not understood."))
    profile_name = data.get("profile")
    if profile_name is not None and profile_name not in PROFILES:
        raise InvalidInput(_("Unknown quality profile."))
    if "receive_video" in flags:
        hub.engine.set_receive_video(room, caller.participant_id, flags["receive_video"])
    if profile_name is not None:
        hub.engine.set_profile(room, caller.participant_id, get_profile(profile_name))
        services.set_profile(caller.consult_id, caller.participant_id, profile_name)
    with hub.lock:
        member = hub.members.get(caller.consult_id, {}).get(caller.participant_id)
        if member is not None:
            member.audio = flags.get("audio", member.audio)
            member.video = flags.get("video", member.video)
            member.profile = profile_name or member.profile
    emit("media", {"id": caller.participant_id, "audio": flags.get("audio"),
                   "video": flags.get("video"), "profile": profile_name},
         to=socket_room(caller.consult_id))


@handler("keepalive")
def on_keepalive(hub: CallHub, data: dict[str, Any]) -> None:
    """Being in a call is activity: the page sends this now and then (media flows outside
    Socket.IO), so the socket's session does not reach its idle time-out mid-call. The
    checks every event runs (see `handler`) are the whole point."""
    _joined_caller(hub, data)


@handler("chat")
def on_chat(hub: CallHub, data: dict[str, Any]) -> None:
    caller = _joined_caller(hub, data)
    message = services.add_chat(caller, data.get("body"))
    emit("chat", {"id": message.id, "author": message.author_name, "from": caller.participant_id,
                  "body": message.body, "at": message.created_at.isoformat()},
         to=socket_room(caller.consult_id))


def shutdown(app: Flask) -> None:
    """Close every call of this app (at exit, and after tests)."""
    hub = app.extensions.get("video_hub")
    if hub is not None:
        hub.close()


