"""Every route and every Socket.IO event, for every role and object kind: allowed or denied.

A route (or event) without a rule here fails `test_every_route_has_a_rule`. To add one, write
one line in RULES: the endpoint, then one or more checks `R(methods, path, allowed, state,
data)`; `path` and the values of `data` may use {consult}, {note}, {attachment},
{note_attachment}, {translation}, {diagnosis}, {user} (the clinician), {specialist} (whose
roster profile is checked), {specialty}, {leave} and {token} (an unused sign-up link); see
`build_case`. `allowed` is the set of roles that get through; `state` is the consult's state
for the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

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
SIGNED_IN = frozenset(ROLES) - {"anonymous"}
PUBLIC = frozenset(ROLES)  # no access check at all: only "never a server error"


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
    # Anyone may switch the interface language; signed in, it is saved to their own profile.
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
    # The specialist with the pending offer sees the consult, but not the ranking behind it.
    "matching.candidates": [R("GET", "/consults/{consult}/matching", STAFF, "offered")],
    "matching.assign": [R("POST", "/consults/{consult}/assign", STAFF, "offered",
                          data={"specialist_id": "{specialist}"})],
}

# Socket.IO: (namespace, event) -> rule; "connect" is an event too. The check connects as the
# role and emits `data` with an ack; denied = refused connection, a disconnect, or an ack
# {"status": 401|403|404}.
@dataclass(frozen=True)
class S:
    allowed: frozenset[str]
    state: str = "accepted"
    data: dict[str, Any] = field(default_factory=dict)


SOCKET_RULES: dict[tuple[str, str], S] = {
    # Each signed-in user joins only their own room; nobody else connects.
    ("/notifications", "connect"): S(SIGNED_IN),
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
    events = {(ns, event) for ns, handlers in server.handlers.items() for event in handlers}
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
            "specialist", "specialty", "leave")}
    return {**ids, "user": objects["clinician"].id, "token": objects.get("token", "")}


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
    return [pytest.param(key, rule, role, id=f"{key[0]}:{key[1]}-{role}")
            for key, rule in SOCKET_RULES.items() for role in ROLES]


@pytest.mark.parametrize(("key", "rule", "role"), _socket_cases())
def test_socket_access(app, client, auth, build_case, key, rule, role):
    namespace, event = key
    objects = build_case(rule.state)
    if role != "anonymous":
        auth.login(objects[role])
    data = {k: (objects[v].id if isinstance(v, str) and v in objects else v)
            for k, v in rule.data.items()}
    sio = socketio.test_client(app, namespace=namespace, flask_test_client=client)
    denied = not sio.is_connected(namespace)
    if not denied and event != "connect":
        ack = sio.emit(event, data, namespace=namespace, callback=True)
        denied = not sio.is_connected(namespace) or (
            isinstance(ack, dict) and ack.get("status") in (401, 403, 404))
    if sio.is_connected(namespace):
        sio.disconnect(namespace=namespace)
    assert denied == (role not in rule.allowed), f"{role} {namespace} {event}"


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
