"""Every route and every Socket.IO event, for every role and object kind: allowed or denied.

A route (or event) without a rule here fails `test_every_route_has_a_rule`. To add one, write
one line in RULES: the endpoint, then one or more checks `R(methods, path, allowed, state,
data)`; `path` and the values of `data` may use {consult}, {note}, {attachment},
{note_attachment}, {translation}, {diagnosis}, {user} (the clinician), {specialist} (whose
roster profile is checked), {specialty}, {leave}, {proposal} (a call time the specialist
proposed), {token} (an unused sign-up link) and {call_token} (an unused guest link to the
consult's call); see `build_case`. `allowed` is the set of roles that get through; `state`
is the consult's state for the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import g

from telehealth.extensions import socketio
from tests.conftest import PASSWORD
from tests.security.conftest import ROLES

CLINIC = frozenset({"clinician"})
CLINICIANS = frozenset({"clinician", "other_clinician"})
ASSIGNED = frozenset({"specialist"})
WRITERS = frozenset({"clinician", "specialist"})
STAFF = frozenset({"coordinator", "admin"})
CASE_READERS = frozenset({"clinician", "specialist", "coordinator", "admin"})
CANCELLERS = frozenset({"clinician", "coordinator", "admin"})
ADMIN = frozenset({"admin"})
# A specialist on their own roster profile ({specialist} is world["specialist"]).
OWN_PROFILE = frozenset({"specialist"})
# In a consult's call: the requesting clinic's clinicians and the assigned specialist, once
# the consult is accepted (coordinators and admins come in only as invited guests).
CALLERS = frozenset({"clinician", "specialist"})
NOBODY: frozenset[str] = frozenset()
SIGNED_IN = frozenset(ROLES) - {"anonymous"}
PUBLIC = frozenset(ROLES)  # no access check at all: only "never a server error"
# A case conference (see build_case): its hub, and the clinician's invited clinic.
CONF_COORD = frozenset({"coordinator"})
CONF_HUB = frozenset({"coordinator", "specialist"})
CONF_MEMBERS = CONF_HUB | CLINIC
CONFERENCE_OBJECTS = ("conf_series", "conf_session", "conf_case", "conf_submitted",
                      "conf_clean", "conf_draft", "conf_image", "conf_slide")
NEW_SERIES = {"topic": "Paediatric HIV", "languages": "fr en", "timezone": "Africa/Kinshasa",
              "weekday": "2", "start": "14:00", "duration_minutes": "90",
              "teaching_minutes": "20", "case_slots": "3", "certificate_percent": "80"}


@dataclass(frozen=True)
class R:
    methods: str
    path: str
    allowed: frozenset[str]
    state: str = "accepted"
    data: dict[str, Any] = field(default_factory=dict)


CLOSE = {"outcome": "treated_locally", "outcome_note": "Better.", "rating": "4"}
PROFILE = {"name": "Dr Amina Diallo", "timezone": "Africa/Lubumbashi", "specialties": "{specialty}",
           "languages": "fr:3 en:2", "capacity": "3", "availability": "mon 08:00-12:00"}
LICENCE = {"licence_number": "L-2031", "licence_body": "Medical Council", "licence_country": "FR",
           "expires_on": "2031-01-31"}
SIGN_UP = {"name": "Dr New", "password": "a long enough password", "timezone": "Europe/Paris",
           "languages": "fr:3", "specialties": "{specialty}"}

RULES: dict[str, list[R]] = {
    "static": [R("GET", "/static/style.css", PUBLIC)],
    "main.dashboard": [R("GET", "/", SIGNED_IN)],
    "accounts.login": [R("GET POST", "/login", PUBLIC)],
    "accounts.logout": [R("POST", "/logout", SIGNED_IN)],
    "accounts.change_password": [R("GET POST", "/account/password", SIGNED_IN)],
    "security.sign_in_code": [R("GET POST", "/login/code", PUBLIC)],
    "security.two_factor": [R("GET POST", "/account/two-factor", SIGNED_IN)],
    "security.reset_two_factor": [R("POST", "/admin/users/{user}/two-factor/reset", ADMIN)],
    "consults.new": [R("GET POST", "/consults/new", CLINICIANS)],
    "consults.detail": [R("GET", "/consults/{consult}", CASE_READERS),
                        R("GET", "/consults/{consult}", CLINIC | ASSIGNED | STAFF, "offered"),
                        R("GET", "/consults/{consult}", CLINIC | STAFF, "draft")],
    "consults.act": [R("POST", "/consults/{consult}/submit", CLINIC, "draft"),
                     R("POST", "/consults/{consult}/accept", ASSIGNED, "offered"),
                     R("POST", "/consults/{consult}/decline", ASSIGNED, "offered"),
                     R("POST", "/consults/{consult}/cancel", CANCELLERS)],
    "consults.close": [R("POST", "/consults/{consult}/close", CLINIC, "answered", CLOSE)],
    "consults.attachment": [R("GET", "/attachments/{attachment}", CASE_READERS),
                            R("GET", "/attachments/{note_attachment}", CASE_READERS)],
    "consults.attachment_preview": [R("GET", "/attachments/{attachment}/preview", CASE_READERS)],
    "consults.api_list": [R("GET", "/api/consults", SIGNED_IN)],
    "consults.api_detail": [R("GET", "/api/consults/{consult}", CASE_READERS)],
    "consults.api_act": [R("POST", "/api/consults/{consult}/submit", CLINIC, "draft"),
                         R("POST", "/api/consults/{consult}/accept", ASSIGNED, "offered"),
                         R("POST", "/api/consults/{consult}/decline", ASSIGNED, "offered"),
                         R("POST", "/api/consults/{consult}/cancel", CANCELLERS),
                         R("POST", "/api/consults/{consult}/close", CLINIC, "answered", CLOSE)],
    "notes.add": [R("POST", "/consults/{consult}/notes", WRITERS, data={"body": "Seen."})],
    "notes.amend": [R("POST", "/notes/{note}/amend", CLINIC, data={"body": "Temp 39.4."})],
    "admin.users": [R("GET", "/admin/users", ADMIN)],
    "admin.new_user": [R("GET POST", "/admin/users/new", ADMIN)],
    "admin.edit_user": [R("GET POST", "/admin/users/{user}", ADMIN)],
    "admin.clinic_list": [R("GET", "/admin/clinics", ADMIN)],
    "admin.new_clinic": [R("GET POST", "/admin/clinics/new", ADMIN)],
    # Messages that keep failing; retrying one that does not exist (or did not fail) is a
    # redirect with a notice.
    "admin.outbox_list": [R("GET", "/admin/outbox", ADMIN)],
    "admin.outbox_retry": [R("POST", "/admin/outbox/999999/retry", ADMIN)],
    # Anyone may switch the interface language; signed in, it is saved to their own profile.
    "i18n.search_timezones": [R("GET", "/api/timezones?q=kinsh", PUBLIC)],
    "i18n.switch_language": [R("POST", "/language", PUBLIC, data={"language": "fr", "next": "/"})],
    "i18n.preferences": [R("GET POST", "/account/preferences", SIGNED_IN,
                           data={"language": "fr", "timezone": "Europe/Paris"})],
    # {note} is the clinician's note in English; only its author corrects its language.
    "translation.correct_language": [R("POST", "/notes/{note}/language", CLINIC,
                                       data={"language": "fr"})],
    "translation.add": [R("POST", "/notes/{note}/translations", CASE_READERS,
                          data={"language": "fr", "text": "39,2 de fièvre ce matin."})],
    # {translation} is the specialist's: somebody else on the case must verify it.
    "translation.verify": [R("POST", "/translations/{translation}/verify", CLINIC | STAFF)],
    "translation.ask": [R("POST", "/notes/{note}/translation-requests", CASE_READERS,
                          data={"language": "es"})],
    "translation.machine": [R("POST", "/notes/{note}/machine-translation", CASE_READERS,
                              data={"language": "es"})],
    # Everyone has a queue; it lists only what a translator (or coordinator) may translate.
    "translation.queue": [R("GET", "/translations/queue", SIGNED_IN)],
    "translation.translators": [R("GET POST", "/translators", STAFF,
                                  data={"user_id": "{user}", "granted": "1"})],
    # The WHO code list holds no patient data.
    "diagnoses.api_search": [R("GET", "/api/icd10?q=pneumonia", SIGNED_IN)],
    "diagnoses.consult_diagnoses": [R("GET", "/consults/{consult}/diagnoses", CASE_READERS),
                                    R("POST", "/consults/{consult}/diagnoses", ASSIGNED,
                                      data={"code": "J18.9"})],
    "diagnoses.remove": [R("POST", "/consults/{consult}/diagnoses/{diagnosis}/remove",
                           ASSIGNED)],
    "roster.index": [R("GET", "/roster", STAFF)],
    "roster.profile": [R("GET", "/roster/{specialist}", OWN_PROFILE | STAFF)],
    "roster.save_profile": [R("POST", "/roster/{specialist}/profile", OWN_PROFILE | STAFF,
                              data=PROFILE)],
    "roster.save_credential": [R("POST", "/roster/{specialist}/credential",
                                 OWN_PROFILE | STAFF, data=LICENCE)],
    "roster.credential_document": [R("GET", "/roster/{specialist}/credential/document",
                                     OWN_PROFILE | STAFF)],
    "roster.verify_credential": [R("POST", "/roster/{specialist}/credential/verify", STAFF),
                                 R("POST", "/roster/{specialist}/credential/reject", STAFF)],
    "roster.change_status": [R("POST", "/roster/{specialist}/suspend", STAFF)],
    "roster.add_leave": [R("POST", "/roster/{specialist}/leave", OWN_PROFILE | STAFF,
                           data={"first_day": "2031-03-03", "last_day": "2031-03-07"})],
    "roster.remove_leave": [R("POST", "/roster/leave/{leave}/delete", OWN_PROFILE | STAFF)],
    "roster.invite": [R("GET POST", "/roster/invite", STAFF,
                        data={"email": "new.specialist@example.org"})],
    # Public by design: the one-time token in the link is the access check.
    "roster.sign_up": [R("GET POST", "/signup/{token}", PUBLIC, data=SIGN_UP)],
    "roster.export": [R("GET", "/roster/export.csv", STAFF)],
    "roster.import_roster": [R("GET POST", "/roster/import", STAFF)],
    "roster.load": [R("GET", "/roster/load", STAFF)],
    "roster.password_link": [R("POST", "/roster/{specialist}/password-link", STAFF)],
    "roster.password_links": [R("POST", "/roster/password-links", STAFF)],
    # The specialist with the pending offer sees the consult, but not the ranking behind it.
    "matching.candidates": [R("GET", "/consults/{consult}/matching", STAFF, "offered")],
    "matching.assign": [R("POST", "/consults/{consult}/assign", STAFF, "offered",
                          data={"specialist_id": "{specialist}"})],
    "matching.escalations": [R("GET", "/escalations", STAFF)],
    "video.static": [R("GET", "/static/video/call.js", PUBLIC)],
    # No call before a specialist has accepted the case, not even for the one it is offered to.
    "video.call": [R("GET", "/consults/{consult}/call", CALLERS),
                   R("GET", "/consults/{consult}/call", CALLERS, "answered"),
                   R("GET", "/consults/{consult}/call", NOBODY, "offered")],
    # Where the call's socket lives now (JSON for a call page that lost its socket).
    "video.where": [R("GET", "/consults/{consult}/call/where", CALLERS),
                    R("GET", "/consults/{consult}/call/where", NOBODY, "offered")],
    "video.invite": [R("POST", "/consults/{consult}/call/invites", CALLERS,
                       data={"guest_name": "Interpreter"}),
                     R("POST", "/consults/{consult}/call/invites", NOBODY, "offered",
                       data={"guest_name": "Interpreter"})],
    # Public by design: the one-time token in the link is the access check.
    "video.redeem": [R("GET", "/call/invite/{call_token}", PUBLIC)],
    "video.propose": [R("POST", "/consults/{consult}/call/proposals", CALLERS,
                        data={"starts_at": "2031-03-03T10:00"})],
    # The other side (here the clinic) accepts a proposed time; the proposing side withdraws it.
    "video.answer_proposal": [
        R("POST", "/consults/{consult}/call/proposals/{proposal}/accept", CLINIC),
        R("POST", "/consults/{consult}/call/proposals/{proposal}/withdraw", ASSIGNED)],
    # The pre-call check (and the probe connection to the media server it opens) holds no
    # case data. Without an SDP offer an allowed role gets a 400, anybody else a 401.
    "video.check": [R("GET", "/call/check", SIGNED_IN)],
    # Resets the idle clock of the caller's own session; nothing else.
    "security.session_alive": [R("GET", "/api/session/alive", SIGNED_IN)],
    "video.probe": [R("POST", "/call/check/probe", SIGNED_IN)],
    # The situation room: coordinators and admins; anybody else is told it does not exist.
    "situation.index": [R("GET", "/situation", STAFF)],
    "situation.download": [R("GET", "/situation/demand.csv", STAFF)],
    "situation.api_room": [R("GET", "/situation/api", STAFF)],
    "situation.api_table": [R("GET", "/situation/api/gaps", STAFF)],
    "situation.static": [R("GET", "/static/situation/situation.js", PUBLIC)],
    # Surveillance: officers' own areas are checked in tests/surveillance/test_access.py; here
    # (no officer among the roles) staff see everything, clinicians their clinic's counts.
    "surveillance.static": [R("GET", "/static/surveillance/alerts.js", PUBLIC)],
    "surveillance.index": [R("GET", "/surveillance", CLINICIANS | STAFF)],
    "surveillance.alert_detail": [R("GET", "/surveillance/alerts/{alert_id}", STAFF)],
    "surveillance.move": [R("POST", "/surveillance/alerts/{alert_id}/move", STAFF,
                            data={"stage": "monitoring"})],
    "surveillance.note": [R("POST", "/surveillance/alerts/{alert_id}/notes", STAFF,
                            data={"body": "Called the clinic."})],
    "surveillance.weekly_report": [R("GET POST", "/surveillance/weekly-report", CLINICIANS,
                                     data={"week": "2020-W01"})],
    "surveillance.bulletin": [R("GET", "/surveillance/bulletin/{area_id}", STAFF)],
    "surveillance.share": [R("POST", "/surveillance/bulletin/{area_id}/share", STAFF,
                             data={"label": "WHO"})],
    "surveillance.revoke": [R("POST", "/surveillance/share/{share_id}/revoke", STAFF)],
    # Public by design: the unguessable token is the access check (aggregates only).
    "surveillance.shared_bulletin": [R("GET", "/bulletins/{share_token}", PUBLIC)],
    "surveillance.export_counts": [R("GET", "/surveillance/export/counts.csv", STAFF)],
    "surveillance.export_alerts": [R("GET", "/surveillance/export/alerts.csv", STAFF)],
    "surveillance.syndromes": [R("GET POST", "/surveillance/syndromes", ADMIN,
                                 data={"code": "x"})],
    "places.areas": [R("GET POST", "/admin/areas", ADMIN, data={"name": "Beni", "code": "B"})],
    "places.import_boundaries": [R("POST", "/admin/areas/import", ADMIN,
                                   data={"geojson": "[]"})],
    "places.place_clinic": [R("POST", "/admin/areas/clinic", ADMIN, data={"clinic_id": "1"})],
    "surveillance.officer_area": [R("POST", "/admin/areas/officer", ADMIN,
                              data={"user_id": "{user}", "area_id": "{area_id}"})],
    # Case conferences: the hub is the coordinator and the specialist, the clinician's clinic
    # is invited; everybody else (admins included) gets a 404, as if nothing were there.
    "conferences.index": [R("GET", "/conferences", SIGNED_IN)],
    "conferences.new": [R("GET POST", "/conferences/new", STAFF, data=NEW_SERIES)],
    "conferences.series": [R("GET", "/conferences/{conf_series}", CONF_MEMBERS)],
    "conferences.plan_sessions": [R("POST", "/conferences/{conf_series}/sessions", CONF_COORD,
                                    data={"weeks": "2"})],
    "conferences.invite": [R("POST", "/conferences/{conf_series}/invitations", CONF_COORD,
                             data={"user_id": "{user}"})],
    # The link is bound to the other clinic: only its clinician gets in with it.
    "conferences.accept": [R("GET", "/conferences/join/{conf_token}",
                             frozenset({"other_clinician"}))],
    "conferences.session": [R("GET", "/conferences/sessions/{conf_session}", CONF_MEMBERS)],
    "conferences.new_case": [R("GET POST",
                               "/conferences/sessions/{conf_session}/cases/new?consult_id={consult}",
                               CLINIC, data={"history": "Cough.", "question": "What next?"})],
    # A draft is its presenter's alone; an approved case is every member's.
    "conferences.case": [R("GET", "/conferences/cases/{conf_case}", CONF_MEMBERS),
                         R("GET POST", "/conferences/cases/{conf_draft}", CLINIC,
                           data={"history": "Cough.", "question": "What next?"})],
    "conferences.case_action": [
        R("POST", "/conferences/cases/{conf_clean}/submit", CLINIC),
        R("POST", "/conferences/cases/{conf_submitted}/approve", CONF_COORD),
        R("POST", "/conferences/cases/{conf_submitted}/return", CONF_COORD)],
    "conferences.dismiss": [R("POST", "/conferences/cases/{conf_draft}/dismissals", CLINIC,
                              data={"kind": "phone", "text": "+243 812 345 678",
                                    "reason": "The hospital's switchboard."})],
    "conferences.case_image": [R("GET", "/conferences/case-images/{conf_image}", CONF_MEMBERS)],
    "conferences.recommend": [R("POST", "/conferences/cases/{conf_case}/recommendations",
                                CONF_HUB, data={"body": "Start cotrimoxazole."})],
    "conferences.attendance": [R("GET POST", "/conferences/sessions/{conf_session}/attendance",
                                 CONF_COORD, data={"user_id": "{user}", "minutes": "60",
                                                   "reason": "Joined by phone."})],
    # Only the clinician attended enough of the session for a certificate.
    "conferences.certificate": [R("GET", "/conferences/sessions/{conf_session}/certificate",
                                  CLINIC)],
    "conferences.attendance_csv": [R("GET", "/conferences/{conf_series}/attendance.csv",
                                     CONF_COORD)],
    # The live room: every member; where its socket lives (JSON); the hub adds slides (a
    # POST without a file is refused as such, after the access check); members see them.
    "conferences.room": [R("GET", "/conferences/sessions/{conf_session}/room", CONF_MEMBERS)],
    "conferences.room_where": [R("GET", "/conferences/sessions/{conf_session}/room/where",
                                 CONF_MEMBERS)],
    "conferences.upload_slides": [R("POST", "/conferences/sessions/{conf_session}/slides",
                                    CONF_HUB)],
    "conferences.slide_image": [R("GET", "/conferences/slides/{conf_slide}/full", CONF_MEMBERS),
                                R("GET", "/conferences/slides/{conf_slide}/preview",
                                  CONF_MEMBERS)],
    "conferences.static": [R("GET", "/conferences/static/room.js", PUBLIC)],
}

# Socket.IO: (namespace, event) -> checks. The check connects as the role and emits `data`
# (a value naming an object of `build_case`, like "consult", is sent as its id) with an ack;
# denied = refused connection, a disconnect, an ack {"status": 401|403|404}, or a `call_error`
# event about this emit. "connect" and "disconnect" are events too: their check is whether the
# role gets a connection (which is then closed).
@dataclass(frozen=True)
class S:
    allowed: frozenset[str]
    state: str = "accepted"
    data: dict[str, Any] = field(default_factory=dict)
    # Join the consult's call first (every role tries; only the allowed ones get in).
    join_first: bool = False
    # Without a WebRTC peer some events cannot succeed: an allowed role must get exactly this
    # `call_error`, which the handler raises only after the sender passed the access check;
    # any other `call_error` (or none at all) for a denied role counts as it is.
    refusal: str | None = None


CALL_EVENT = {"consult_id": "consult"}
SDP_ANSWER_REFUSED = "The answer is not valid SDP."
SERVER_OFFERS = "The server makes the offers; join the call again to reconnect."
ROOM_EVENT = {"session_id": "conf_session"}
NOT_IN_ROOM = "This person is not in the room."

SOCKET_RULES: dict[tuple[str, str], list[S]] = {
    # Each signed-in user joins only their own room; nobody else connects.
    ("/notifications", "connect"): [S(SIGNED_IN)],
    # Signed-in people (and guests holding a redeemed invite) connect; which call they may be
    # in is checked on every event.
    ("/call", "connect"): [S(SIGNED_IN)],
    ("/call", "disconnect"): [S(SIGNED_IN)],
    # "join" starts the media engine for real: the server's offer needs no peer yet.
    ("/call", "join"): [S(CALLERS, data={**CALL_EVENT, "profile": "low"}),
                        S(NOBODY, "offered", {**CALL_EVENT, "profile": "low"})],
    # Not valid SDP on purpose (there is no browser to answer the engine's offer).
    ("/call", "answer"): [S(CALLERS, data={**CALL_EVENT, "sdp": "no browser here"},
                            join_first=True, refusal=SDP_ANSWER_REFUSED)],
    # Clients never make offers: a member is told so, anybody else is refused before that.
    ("/call", "offer"): [S(CALLERS, data={**CALL_EVENT, "sdp": "v=0"}, join_first=True,
                           refusal=SERVER_OFFERS)],
    ("/call", "candidate"): [S(CALLERS, data={
        **CALL_EVENT, "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0}, join_first=True)],
    ("/call", "media"): [S(CALLERS, data={**CALL_EVENT, "video": False,
                                          "receive_video": False}, join_first=True)],
    ("/call", "chat"): [S(CALLERS, data={**CALL_EVENT, "body": "Can you hear me?"},
                          join_first=True)],
    ("/call", "keepalive"): [S(CALLERS, data=CALL_EVENT, join_first=True)],
    ("/call", "leave"): [S(CALLERS, data=CALL_EVENT, join_first=True)],
    # A case conference's live room: its members (the hub and the invited clinic's
    # clinicians); moderation and slides for the hub only. Without a browser, an action on
    # somebody who is not in the room is refused as such once the sender passed the checks.
    ("/conference", "connect"): [S(SIGNED_IN)],
    ("/conference", "disconnect"): [S(SIGNED_IN)],
    ("/conference", "join"): [S(CONF_MEMBERS, data={**ROOM_EVENT, "profile": "low"})],
    ("/conference", "answer"): [S(CONF_MEMBERS, data={**ROOM_EVENT, "sdp": "no browser here"},
                                  join_first=True, refusal=SDP_ANSWER_REFUSED)],
    ("/conference", "candidate"): [S(CONF_MEMBERS, data={
        **ROOM_EVENT, "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0}, join_first=True)],
    ("/conference", "media"): [S(CONF_MEMBERS, data={**ROOM_EVENT, "video": False},
                                 join_first=True)],
    ("/conference", "keepalive"): [S(CONF_MEMBERS, data=ROOM_EVENT, join_first=True)],
    ("/conference", "hand"): [S(CONF_MEMBERS, data={**ROOM_EVENT, "raised": True},
                                join_first=True)],
    ("/conference", "mute"): [S(CONF_HUB, data={**ROOM_EVENT, "participant": "nobody",
                                                "muted": True},
                                join_first=True, refusal=NOT_IN_ROOM)],
    ("/conference", "lower_hand"): [S(CONF_HUB, data={**ROOM_EVENT, "participant": "nobody"},
                                      join_first=True, refusal=NOT_IN_ROOM)],
    ("/conference", "remove"): [S(CONF_HUB, data={**ROOM_EVENT, "participant": "nobody"},
                                  join_first=True, refusal=NOT_IN_ROOM)],
    ("/conference", "slide"): [S(CONF_HUB, data={**ROOM_EVENT, "slide_id": "conf_slide"},
                                 join_first=True)],
    # Sharing a screen (which pins the sharer in everyone's video): the hub, and the
    # clinician presenting the session's approved case.
    ("/conference", "screen_share"): [S(CONF_MEMBERS, data={**ROOM_EVENT, "on": True},
                                        join_first=True)],
    ("/conference", "leave"): [S(CONF_MEMBERS, data=ROOM_EVENT, join_first=True)],
    # The situation room's "figures changed" events: coordinators and admins only.
    ("/situation", "connect"): [S(STAFF)],
}


def _cases() -> list[Any]:
    return [pytest.param(endpoint, check, method, id=f"{endpoint}[{index}]-{method}")
            for endpoint, checks in RULES.items() for index, check in enumerate(checks)
            for method in check.methods.split()]


def test_every_route_has_a_rule(app):
    missing, uncovered = [], []
    for rule in app.url_map.iter_rules():
        checks = RULES.get(rule.endpoint)
        if checks is None:
            missing.append(f"{rule.endpoint} {rule.rule}")
            continue
        covered = {m for check in checks for m in check.methods.split()}
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"} - covered:
            uncovered.append(f"{rule.endpoint} {method}")
    assert not missing, f"routes without an access rule: {missing}"
    assert not uncovered, f"methods without an access rule: {uncovered}"
    stale = set(RULES) - {rule.endpoint for rule in app.url_map.iter_rules()}
    assert not stale, f"rules for routes that no longer exist: {stale}"


def _socket_events() -> set[tuple[str, str]]:
    server = socketio.server
    # A catch-all ("*") is not an event a client sends; what it checks is tested apart.
    events = {(ns, event) for ns, handlers in server.handlers.items() for event in handlers
              if event != "*"}
    for ns, handler in server.namespace_handlers.items():
        events |= {(ns, name[3:]) for name in dir(handler) if name.startswith("on_")}
    return events


def test_every_socket_event_has_a_rule(app):
    missing = _socket_events() - set(SOCKET_RULES)
    assert not missing, f"Socket.IO events without an access rule: {sorted(missing)}"


def _is_denied(response: Any, role: str) -> bool:
    if role == "anonymous":
        location = response.headers.get("Location", "")
        return response.status_code == 401 or (response.status_code in (302, 303)
                                               and "/login" in location)
    return response.status_code in (401, 403, 404)


def _ids(objects):
    ids = {name: getattr(objects.get(name), "id", "") for name in
           ("consult", "note", "attachment", "note_attachment", "translation", "diagnosis",
            "specialist", "specialty", "leave", "proposal")}
    ids |= {name: getattr(objects.get(name), "id", "") for name in CONFERENCE_OBJECTS}
    return {**ids, "user": objects["clinician"].id, "token": objects.get("token", ""),
            "call_token": objects.get("call_token", ""),
            "conf_token": objects.get("conf_token", ""), **objects.get("surveillance", {})}


def _path(check, objects):
    return check.path.format(**_ids(objects))


def _data(check, objects):
    ids = _ids(objects)
    return {key: value.format(**ids) for key, value in check.data.items()}


def _request(app, objects, check, method, role):
    client = app.test_client()
    if role != "anonymous":
        assert client.post("/login", data={"email": objects[role].email,
                                           "password": PASSWORD}).status_code == 302
    path = _path(check, objects)
    response = client.open(path, method=method,
                           data=_data(check, objects) if method == "POST" else None)
    response.close()  # a file response holds its file open until closed
    return path, response


@pytest.mark.parametrize(("endpoint", "check", "method"), _cases())
def test_access(app, build_case, endpoint, check, method):
    """Every role against one check: denied roles first on the fresh case (they must change
    nothing), then each allowed role; a POST that went through may have changed the case, so
    the next role gets a new one."""
    objects = build_case(check.state)
    roles = sorted(ROLES, key=lambda role: role in check.allowed)
    wrong, changed = [], False
    for role in roles:
        allowed = role in check.allowed
        if changed:
            objects = build_case(check.state, fresh=True)
        path, response = _request(app, objects, check, method, role)
        changed = (method == "POST" and allowed and check.allowed is not PUBLIC
                   and response.status_code < 400)
        if response.status_code >= 500:
            wrong.append(f"{role}: {method} {path} -> {response.status_code}")
        elif check.allowed is not PUBLIC and _is_denied(response, role) == allowed:
            wrong.append(f"{role} should be {'allowed' if allowed else 'denied'}: {method} "
                         f"{path} -> {response.status_code} {response.headers.get('Location')}")
    assert not wrong, "\n".join(wrong)


def _socket_cases() -> list[Any]:
    return [pytest.param(key, rule, id=f"{key[0]}:{key[1]}[{index}]")
            for key, rules in SOCKET_RULES.items() for index, rule in enumerate(rules)]


def _call_errors(sio: Any, namespace: str, event: str) -> list[str]:
    """The messages of the `call_error` events received about `event` (others are dropped)."""
    return [message["args"][0]["message"] for message in sio.get_received(namespace)
            if message["name"] == "call_error" and message["args"][0].get("event") == event]


def _socket_outcome(app, objects, namespace, event, rule, role) -> tuple[bool, list[str]]:
    """Connect as the role, emit the event: (denied, the `call_error` messages about it)."""
    client = app.test_client()
    if role != "anonymous":
        assert client.post("/login", data={"email": objects[role].email,
                                           "password": PASSWORD}).status_code == 302
    g.pop("_login_user", None)  # socket handlers share the test's `g`: no user from before
    data = {k: (objects[v].id if isinstance(v, str) and v in objects else v)
            for k, v in rule.data.items()}
    sio = socketio.test_client(app, namespace=namespace, flask_test_client=client)
    denied, errors, joined = not sio.is_connected(namespace), [], False
    # Which call or room: a consult's call, or a conference session's room.
    where = {key: data[key] for key in ("consult_id", "session_id") if key in data}
    if not denied and rule.join_first:
        sio.emit("join", {**where, "profile": "low"}, namespace=namespace)
        joined = sio.is_connected(namespace) and not _call_errors(sio, namespace, "join")
    if not denied and event not in ("connect", "disconnect"):
        ack = sio.emit(event, data, namespace=namespace, callback=True)
        joined = joined or (event == "join" and sio.is_connected(namespace))
        errors = _call_errors(sio, namespace, event) if sio.is_connected(namespace) else []
        denied = (not sio.is_connected(namespace)
                  or (isinstance(ack, dict) and ack.get("status") in (401, 403, 404))
                  or any(message != rule.refusal for message in errors))
    if joined and sio.is_connected(namespace) and event != "leave":
        sio.emit("leave", where, namespace=namespace)
    if sio.is_connected(namespace):
        sio.disconnect(namespace=namespace)
    return denied, errors


@pytest.mark.parametrize(("key", "rule"), _socket_cases())
def test_socket_access(app, build_case, call_engine, key, rule):
    """Every role against one socket check, on one case: what an allowed role does in a call
    (a chat line, a join and leave) does not change who may do what."""
    namespace, event = key
    objects = build_case(rule.state)
    wrong = []
    for role in ROLES:
        allowed = role in rule.allowed
        denied, errors = _socket_outcome(app, objects, namespace, event, rule, role)
        if denied == allowed:
            wrong.append(f"{role} should be {'allowed' if allowed else 'denied'}: {namespace} "
                         f"{event} -> {errors}")
        elif allowed and rule.refusal is not None and errors != [rule.refusal]:
            wrong.append(f"{role}: {namespace} {event} should be refused only with "
                         f"{rule.refusal!r}, got {errors}")
    assert not wrong, "\n".join(wrong)


def test_every_post_route_refuses_a_request_without_csrf_token(app, build_case, monkeypatch):
    """CSRF: each state-changing route in RULES, tried by a role that may use it, no token."""
    objects = build_case("accepted")
    checked = []
    for endpoint, checks in RULES.items():
        for check in checks:
            if "POST" not in check.methods.split():
                continue
            role = next((r for r in ROLES if r in check.allowed and r != "anonymous"),
                        "clinician")
            client = app.test_client()
            client.post("/login", data={"email": objects[role].email, "password": PASSWORD})
            monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
            response = client.post(_path(check, objects), data=_data(check, objects))
            monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
            assert response.status_code == 400, f"{endpoint} {check.path}: {response.status_code}"
            checked.append(endpoint)
    assert len(set(checked)) >= 10
