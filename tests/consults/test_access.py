"""Who may see what: clinics see only their own consults, specialists only theirs."""

from __future__ import annotations

import pytest

from telehealth.accounts.models import Role
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from telehealth.notes.models import Note, NoteRevision
from telehealth.notes.services import add_note
from tests.conftest import image_bytes

READ_ROUTES = ["/consults/{id}", "/api/consults/{id}"]
WRITE_ROUTES = [
    ("/consults/{id}/submit", {}),
    ("/consults/{id}/accept", {}),
    ("/consults/{id}/decline", {}),
    ("/consults/{id}/cancel", {}),
    ("/consults/{id}/close", {"outcome": "died"}),
    ("/consults/{id}/notes", {"body": "intruder"}),
    ("/api/consults/{id}/cancel", {}),
    ("/api/consults/{id}/close", {"outcome": "died"}),
]


def _snapshot():
    consults = {c.id: (c.status, c.specialist_id, c.outcome) for c in
                db.session.scalars(db.select(Consult))}
    notes = db.session.scalar(db.select(db.func.count(NoteRevision.id)))
    return consults, notes


@pytest.fixture()
def cases(world, make_consult):
    """Consults of the first clinic: one draft, one offered, one answered with files and notes."""
    clinician = world["clinician"]
    draft = make_consult(clinician, submit=False)
    offered = make_consult(clinician, files=[("x-ray.png", image_bytes("PNG"))])
    answered = make_consult(clinician, files=[("photo.jpg", image_bytes())])
    from telehealth.matching.services import accept_consult

    accept_consult(answered, world["specialist"])
    add_note(answered, world["specialist"], "Answer.", answer=True)
    db.session.commit()
    return {"draft": draft, "offered": offered, "answered": answered}


def test_other_clinic_sees_nothing_walking_ids(client, auth, world, cases):
    auth.login(world["other_clinician"])
    before = _snapshot()
    max_id = max(c.id for c in cases.values()) + 3
    for consult_id in range(1, max_id):
        for route in READ_ROUTES:
            assert client.get(route.format(id=consult_id)).status_code in (403, 404), route
        for route, data in WRITE_ROUTES:
            response = client.post(route.format(id=consult_id), data=data)
            assert response.status_code in (403, 404), (route, response.status_code)
    for attachment_id in range(1, 10):
        assert client.get(f"/attachments/{attachment_id}").status_code in (403, 404)
    for note_id in range(1, 10):
        response = client.post(f"/notes/{note_id}/amend", data={"body": "changed"})
        assert response.status_code in (403, 404)
    assert client.get("/api/consults").json["items"] == []
    # Each consult's own reference, not a bare "C-0": a random CSRF token can contain that.
    dashboard = client.get("/").text
    assert not [c.reference for c in cases.values() if c.reference in dashboard]
    assert _snapshot() == before


def test_clinic_sees_its_own_consults_and_files(client, auth, world, cases):
    auth.login(world["clinician"])
    for consult in cases.values():
        assert client.get(f"/consults/{consult.id}").status_code == 200
    attachment = cases["answered"].attachments[0]
    response = client.get(f"/attachments/{attachment.id}")
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.data[:3] == b"\xff\xd8\xff"
    response.close()


def test_specialist_sees_only_offered_or_assigned(client, auth, world, cases, make_user):
    # The cardiologist has the offer and the assignment; the dermatologist has neither.
    auth.login(world["other_specialist"])
    for consult in cases.values():
        assert client.get(f"/consults/{consult.id}").status_code == 404
    assert client.get(f"/attachments/{cases['answered'].attachments[0].id}").status_code == 404
    auth.logout()

    auth.login(world["specialist"])
    assert client.get(f"/consults/{cases['draft'].id}").status_code == 404
    assert client.get(f"/consults/{cases['offered'].id}").status_code == 200
    assert client.get(f"/consults/{cases['answered'].id}").status_code == 200
    # Declining an offer ends access to that consult.
    assert client.post(f"/consults/{cases['offered'].id}/decline").status_code == 302
    assert client.get(f"/consults/{cases['offered'].id}").status_code == 404


def test_offered_specialist_cannot_write_before_accepting(client, auth, world, cases):
    auth.login(world["specialist"])
    response = client.post(f"/consults/{cases['offered'].id}/notes", data={"body": "hi"})
    assert response.status_code == 403
    assert db.session.scalar(db.select(db.func.count(Note.id)).where(
        Note.consult_id == cases["offered"].id)) == 0


def test_coordinator_sees_all_open_consults_oldest_first(client, auth, world, cases):
    auth.login(world["coordinator"])
    rows = client.get("/api/consults").json["items"]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert {r["status"] for r in rows} <= {"submitted", "offered", "escalated", "accepted",
                                             "answered"}
    assert cases["draft"].id not in {r["id"] for r in rows}


@pytest.mark.parametrize("role", [Role.SPECIALIST, Role.COORDINATOR])
def test_only_clinicians_request_consults(client, auth, make_user, role):
    auth.login(make_user(role))
    assert client.get("/consults/new").status_code == 403


def test_anonymous_is_sent_to_sign_in(client, world, cases):
    response = client.get(f"/consults/{cases['offered'].id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/api/consults").status_code in (302, 401)


def test_admin_pages_are_for_admins(client, auth, world):
    for who in ("clinician", "specialist", "coordinator"):
        auth.login(world[who])
        for path in ("/admin/users", "/admin/clinics", "/admin/users/new"):
            assert client.get(path).status_code == 403, (who, path)
        auth.logout()
    auth.login(world["admin"])
    assert client.get("/admin/users").status_code == 200


def test_status_unchanged_by_denied_actions(client, auth, world, cases):
    auth.login(world["other_specialist"])
    client.post(f"/consults/{cases['offered'].id}/accept")
    db.session.expire_all()
    assert db.session.get(Consult, cases["offered"].id).status == ConsultStatus.OFFERED
