"""Signaling for conference rooms: the /conference Socket.IO namespace.

The same guard as /call (telehealth.video.guard: live session, rate, size, payload shape,
one transaction per event), with this namespace's own payload shapes. Every handler checks
that the sender is a member of the session (services.room_member: 404 for anyone else) and,
past "join", that this socket joined as them; moderator actions check the hub role.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import emit, join_room, leave_room

from telehealth import clock
from telehealth.conferences import services
from telehealth.conferences.room import (
    NAMESPACE,
    ConferenceHub,
    get_conference_hub,
    room_id,
    socket_room,
)
from telehealth.errors import InvalidInput
from telehealth.extensions import socketio
from telehealth.security.sessions import socket_session_alive, user_room
from telehealth.video.guard import (
    FLAG,
    TEXT,
    AnsweringNamespace,
    CallElsewhere,
    Field,
    RateLimits,
    Refused,
    current_sid,
    guarded,
)
from telehealth.video.profiles import DEFAULT_PROFILE, PROFILES
from telehealth.video.turn import ice_servers

SESSION_ID = Field((int,), required=True, low=1)
PARTICIPANT = Field((str,), required=True)
SHAPES: dict[str, dict[str, Field]] = {
    "join": {"session_id": SESSION_ID, "profile": TEXT},
    "answer": {"session_id": SESSION_ID, "sdp": Field((str,), required=True)},
    "candidate": {"session_id": SESSION_ID, "candidate": Field((str,), required=True),
                  "sdpMid": TEXT, "sdpMLineIndex": Field((int,), high=1_000)},
    "leave": {"session_id": SESSION_ID},
    "media": {"session_id": SESSION_ID, "audio": FLAG, "video": FLAG, "receive_video": FLAG,
              "profile": TEXT},
    "keepalive": {"session_id": SESSION_ID},
    "hand": {"session_id": SESSION_ID, "raised": Field((bool,), required=True)},
    "mute": {"session_id": SESSION_ID, "participant": PARTICIPANT,
             "muted": Field((bool,), required=True)},
    "lower_hand": {"session_id": SESSION_ID, "participant": PARTICIPANT},
    "remove": {"session_id": SESSION_ID, "participant": PARTICIPANT},
    "slide": {"session_id": SESSION_ID, "slide_id": Field((int,), low=1)},
    "screen_share": {"session_id": SESSION_ID, "on": Field((bool,), required=True)},
}
# Largest payload (JSON characters) per event; an answer is as large as a call's.
MAX_PAYLOAD = {"join": 1_000, "answer": 40_000, "candidate": 2_000, "leave": 500,
               "media": 500, "keepalive": 200, "hand": 200, "mute": 300, "lower_hand": 300,
               "remove": 300, "slide": 200, "screen_share": 200}


def _rates(namespace: ConferenceNamespace) -> RateLimits:
    return namespace.rates


def _event(name: str) -> Any:
    return guarded(name, _rates, SHAPES, MAX_PAYLOAD)


def _person(data: dict[str, Any]) -> services.RoomMember:
    user = current_user._get_current_object()
    return services.room_member(user, data["session_id"])


def _joined(hub: ConferenceHub, data: dict[str, Any]) -> services.RoomMember:
    person = _person(data)
    if not hub.is_joined(current_sid(), person):
        raise Refused(_("You have not joined this conference."))
    return person


def _moderator(hub: ConferenceHub, data: dict[str, Any]) -> services.RoomMember:
    person = _joined(hub, data)
    if not person.moderator:
        raise Refused(_("Only the hub's coordinators and specialists can do this."))
    return person


def _target(hub: ConferenceHub, person: services.RoomMember, data: dict[str, Any]) -> str:
    participant_id: str = data["participant"]
    if hub.member(person.session_id, participant_id) is None:
        raise InvalidInput(_("This person is not in the room."))
    return participant_id


def _profile(data: dict[str, Any], default: str | None) -> str | None:
    name = data.get("profile") or default
    if name is not None and name not in PROFILES:
        raise InvalidInput(_("Unknown quality profile."))
    return name


def slide_payload(slide: services.ConferenceSlide, count: int) -> dict[str, Any]:
    """What a page needs to show a slide: full size, and the small still for slow links."""
    return {"id": slide.id, "position": slide.position, "count": count,
            "url": url_for("conferences.slide_image", slide_id=slide.id, size="full"),
            "preview_url": url_for("conferences.slide_image", slide_id=slide.id,
                                   size="preview")}


class ConferenceNamespace(AnsweringNamespace):
    """/conference: join, answer, candidates, media, hands, moderation, slides, leave."""

    def __init__(self, app: Flask) -> None:
        super().__init__(NAMESPACE)
        self.app = app
        self.rates = RateLimits()

    @property
    def hub(self) -> ConferenceHub:
        return get_conference_hub(self.app)

    def on_connect(self, auth: Any = None) -> bool:
        """Only signed-in people open the socket (conferences have no guests)."""
        if not current_user.is_authenticated or not socket_session_alive():
            return False
        join_room(user_room(current_user.id))  # signing out closes it
        return True

    def on_disconnect(self, reason: Any = None) -> None:
        sid = current_sid()
        self.rates.forget(sid)
        self.hub.socket_gone(sid, closed_by_us=reason == socketio.server.reason.SERVER_DISCONNECT)

    @_event("join")
    def on_join(self, data: dict[str, Any]) -> None:
        hub = self.hub
        person = _person(data)
        profile = _profile(data, DEFAULT_PROFILE)
        assert profile is not None
        if hub.is_removed(person):
            raise Refused(_("A moderator removed you from this session."))
        sid = current_sid()
        previous = hub.joined_as(sid)
        if previous is not None and previous != (person.session_id, person.participant_id):
            raise Refused(_("Leave your other call first."))
        owner = hub.owner(person.session_id)
        if owner != hub.node.id:
            raise CallElsewhere(owner)
        offer = hub.add_member(person, sid, profile)
        join_room(socket_room(person.session_id))
        send_profile = hub.engine.send_limit(offer.room, person.participant_id)
        emit("offer", {"session_id": person.session_id, "type": "offer", "sdp": offer.sdp,
                       "profile": profile, "send_profile": send_profile,
                       "self": person.participant_id,
                       "ice_servers": ice_servers(hub.calls.ice_settings(),
                                                  person.participant_id,
                                                  int(clock.now().timestamp()))})
        emit("peer_state", {"id": person.participant_id, "state": "joining"},
             to=socket_room(person.session_id), include_self=False)
        hub.send_peers(person.session_id)
        hub.send_roster(person.session_id)

    @_event("answer")
    def on_answer(self, data: dict[str, Any]) -> None:
        person = _joined(self.hub, data)
        sdp = data["sdp"]
        if not sdp.startswith("v=0"):
            raise InvalidInput(_("The answer is not valid SDP."))
        self.hub.engine.answer(room_id(person.session_id), person.participant_id, sdp)

    @_event("candidate")
    def on_candidate(self, data: dict[str, Any]) -> None:
        person = _joined(self.hub, data)
        self.hub.engine.add_candidate(room_id(person.session_id), person.participant_id,
                                      data["candidate"], data.get("sdpMid"),
                                      data.get("sdpMLineIndex"))

    @_event("leave")
    def on_leave(self, data: dict[str, Any]) -> None:
        hub = self.hub
        person = _joined(hub, data)
        hub.forget_socket(current_sid())
        leave_room(socket_room(person.session_id))
        hub.remove(person.session_id, person.participant_id)
        emit("left", {"session_id": person.session_id})

    @_event("media")
    def on_media(self, data: dict[str, Any]) -> None:
        hub = self.hub
        person = _joined(hub, data)
        flags = {k: data[k] for k in ("audio", "video", "receive_video")
                 if data.get(k) is not None}
        hub.set_media(person, flags, _profile(data, None))
        hub.send_roster(person.session_id)

    @_event("keepalive")
    def on_keepalive(self, data: dict[str, Any]) -> None:
        """Being in the room is activity (see /call's keepalive): the guard's checks are it."""
        _joined(self.hub, data)

    @_event("hand")
    def on_hand(self, data: dict[str, Any]) -> None:
        """A participant raises (or lowers) their own hand."""
        hub = self.hub
        person = _joined(hub, data)
        hub.set_hand(person.session_id, person.participant_id, data["raised"])
        hub.send_roster(person.session_id)

    @_event("lower_hand")
    def on_lower_hand(self, data: dict[str, Any]) -> None:
        hub = self.hub
        person = _moderator(hub, data)
        hub.set_hand(person.session_id, _target(hub, person, data), False)
        hub.send_roster(person.session_id)

    @_event("mute")
    def on_mute(self, data: dict[str, Any]) -> None:
        """A moderator mutes (or unmutes) someone: the server stops forwarding their audio,
        and their page mutes its microphone and says so."""
        hub = self.hub
        person = _moderator(hub, data)
        hub.set_muted(person.session_id, _target(hub, person, data), data["muted"])
        hub.send_roster(person.session_id)

    @_event("remove")
    def on_remove(self, data: dict[str, Any]) -> None:
        hub = self.hub
        person = _moderator(hub, data)
        target = _target(hub, person, data)
        member = hub.member(person.session_id, target)
        if member is not None and member.person.moderator:
            raise Refused(_("Members of the hub cannot be removed from the room."))
        hub.expel(person.session_id, target)

    @_event("slide")
    def on_slide(self, data: dict[str, Any]) -> None:
        """The presenter shows slide k to everyone (no slide_id: the slide is taken down)."""
        hub = self.hub
        person = _moderator(hub, data)
        slide_id = data.get("slide_id")
        shown = None
        if slide_id is not None:
            slide = services.slide_in_session(person.session_id, slide_id)
            count = len(services.slides_of(person.session_id))
            shown = slide_payload(slide, count)
        hub.show_slide(person.session_id, shown)

    @_event("screen_share")
    def on_screen_share(self, data: dict[str, Any]) -> None:
        """A presenter starts (or stops) sharing their screen: the room pins them first in
        everyone's video (see ConferenceHub.share)."""
        hub = self.hub
        person = _joined(hub, data)
        if data["on"] and not services.may_present(person):
            raise Refused(_("Only the hub and the session's presenters can share a screen."))
        if hub.share(person.session_id, person.participant_id, data["on"]):
            hub.send_roster(person.session_id)


def init_app(app: Flask) -> None:
    """Serve /conference for this app."""
    socketio.on_namespace(ConferenceNamespace(app))
