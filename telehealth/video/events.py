"""Signaling for calls: the /call Socket.IO namespace, registered by `create_app`.

Each handler gets a payload the guard (guard.py) has already checked, makes sure the sender
may be in that consult's call, and asks the hub (hub.py) and its media engine to act.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask, session
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import emit, join_room, leave_room

from telehealth import clock, transaction
from telehealth.errors import InvalidInput
from telehealth.extensions import socketio
from telehealth.security.sessions import socket_session_alive, user_room
from telehealth.video import services
from telehealth.video.guard import (
    AnsweringNamespace,
    CallElsewhere,
    RateLimits,
    Refused,
    current_sid,
    guarded,
    is_guest,
)
from telehealth.video.hub import NAMESPACE, CallHub, get_hub, socket_room
from telehealth.video.profiles import DEFAULT_PROFILE, PROFILES
from telehealth.video.turn import ice_servers


def _caller(data: dict[str, Any]) -> services.Caller:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return services.caller_for(user, session.get(services.GUEST_SESSION_KEY),
                               data["consult_id"])


def _joined_caller(hub: CallHub, data: dict[str, Any]) -> services.Caller:
    caller = _caller(data)
    if not hub.is_joined(current_sid(), caller):
        raise Refused(_("You have not joined this call."))
    return caller


def _profile(data: dict[str, Any], default: str | None) -> str | None:
    name = data.get("profile") or default
    if name is not None and name not in PROFILES:
        raise InvalidInput(_("Unknown quality profile."))
    return name


def _rates(namespace: CallNamespace) -> RateLimits:
    return namespace.rates


class CallNamespace(AnsweringNamespace):
    """/call: join, answer the server's offer, trickle candidates, media state, chat, leave."""

    def __init__(self, app: Flask) -> None:
        super().__init__(NAMESPACE)
        self.app = app
        self.rates = RateLimits()

    @property
    def hub(self) -> CallHub:
        return get_hub(self.app)

    def on_connect(self, auth: Any = None) -> bool:
        """Only signed-in users and guests holding a redeemed invite may open the socket."""
        if is_guest() and not current_user.is_authenticated:
            return True
        if not socket_session_alive():
            return False
        # Signing out or a change of role disconnects every socket in the user's room.
        join_room(user_room(current_user.id))
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        sid = current_sid()
        self.rates.forget(sid)
        self.hub.socket_gone(sid, closed_by_us=reason == socketio.server.reason.SERVER_DISCONNECT)

    @guarded("join", _rates)
    def on_join(self, data: dict[str, Any]) -> None:
        hub = self.hub
        caller = _caller(data)
        profile = _profile(data, DEFAULT_PROFILE)
        assert profile is not None
        sid = current_sid()
        previous = hub.joined_as(sid)
        if previous is not None and previous != (caller.consult_id, caller.participant_id):
            raise Refused(_("Leave your other call first."))
        # A page loaded before the call moved (or opened on the wrong node) must not start a
        # second call here: the participants would never see each other.
        owner = hub.owner(caller.consult_id)
        if owner != hub.node.id:
            raise CallElsewhere(owner)
        offer = hub.add_member(caller, sid, profile)
        services.record_join(caller, profile)
        join_room(socket_room(caller.consult_id))
        send_profile = hub.engine.send_limit(offer.room, caller.participant_id)
        emit("offer", {"consult_id": caller.consult_id, "type": "offer", "sdp": offer.sdp,
                       "profile": profile, "send_profile": send_profile,
                       "self": caller.participant_id,
                       "ice_servers": ice_servers(hub.ice_settings(), caller.participant_id,
                                                  int(clock.now().timestamp()))})
        emit("peer_state", {"id": caller.participant_id, "state": "joining"},
             to=socket_room(caller.consult_id), include_self=False)
        hub.send_peers(caller.consult_id)

    @guarded("answer", _rates)
    def on_answer(self, data: dict[str, Any]) -> None:
        caller = _joined_caller(self.hub, data)
        sdp = data["sdp"]
        if not sdp.startswith("v=0"):
            raise InvalidInput(_("The answer is not valid SDP."))
        self.hub.engine.answer(self.hub.room(caller), caller.participant_id, sdp)

    @guarded("offer", _rates)
    def on_offer(self, data: dict[str, Any]) -> None:
        _joined_caller(self.hub, data)
        # The server makes every offer; a client that wants a fresh connection joins again.
        raise InvalidInput(_("The server makes the offers; join the call again to reconnect."))

    @guarded("candidate", _rates)
    def on_candidate(self, data: dict[str, Any]) -> None:
        caller = _joined_caller(self.hub, data)
        self.hub.engine.add_candidate(self.hub.room(caller), caller.participant_id,
                                      data["candidate"], data.get("sdpMid"),
                                      data.get("sdpMLineIndex"))

    @guarded("leave", _rates)
    def on_leave(self, data: dict[str, Any]) -> None:
        hub = self.hub
        caller = _joined_caller(hub, data)
        hub.forget_socket(current_sid())
        leave_room(socket_room(caller.consult_id))
        hub.remove(caller.consult_id, caller.participant_id, "left")
        emit("left", {"consult_id": caller.consult_id})

    @guarded("media", _rates)
    def on_media(self, data: dict[str, Any]) -> None:
        """Camera/microphone state, audio-only switch and quality profile of the sender."""
        hub = self.hub
        caller = _joined_caller(hub, data)
        flags = {k: data[k] for k in ("audio", "video", "receive_video")
                 if data.get(k) is not None}
        profile = _profile(data, None)
        hub.set_media(caller, flags, profile)
        if profile is not None:
            services.set_profile(caller.consult_id, caller.participant_id, profile)
        emit("media", {"id": caller.participant_id, "audio": flags.get("audio"),
                       "video": flags.get("video"), "profile": profile},
             to=socket_room(caller.consult_id))

    @guarded("keepalive", _rates)
    def on_keepalive(self, data: dict[str, Any]) -> None:
        """Being in a call is activity: the page sends this now and then (media flows outside
        Socket.IO), so the socket's session does not reach its idle time-out mid-call. The
        checks every event runs (see `guarded`) are the whole point."""
        _joined_caller(self.hub, data)

    @guarded("chat", _rates)
    def on_chat(self, data: dict[str, Any]) -> None:
        caller = _joined_caller(self.hub, data)
        message = services.add_chat(caller, data["body"])
        # Shown only once it is stored: a line the others saw is a line the record keeps.
        transaction.after_commit(functools.partial(
            emit, "chat", {"id": message.id, "author": message.author_name,
                           "from": caller.participant_id, "body": message.body,
                           "at": message.created_at.isoformat()},
            to=socket_room(caller.consult_id)))


def init_app(app: Flask) -> None:
    """Serve /call for this app."""
    socketio.on_namespace(CallNamespace(app))
