"""The trail records who saw or changed what, on which consult, from where."""

from __future__ import annotations

import io

from telehealth.audit.models import AuditEvent
from telehealth.extensions import db
from tests.conftest import PASSWORD, image_bytes

IP = "192.0.2.7"


def _events(**where):
    query = db.select(AuditEvent).order_by(AuditEvent.seq)
    for column, value in where.items():
        query = query.where(getattr(AuditEvent, column) == value)
    return db.session.scalars(query).all()


def test_views_changes_sign_ins_and_role_changes_are_recorded(app, client, build_case):
    objects = build_case("accepted")
    consult, clinician, admin = objects["consult"], objects["clinician"], objects["admin"]
    client.environ_base["REMOTE_ADDR"] = IP
    client.post("/login", data={"email": clinician.email, "password": "wrong"})
    client.post("/login", data={"email": clinician.email, "password": PASSWORD})
    client.get(f"/consults/{consult.id}")
    client.get(f"/api/consults/{consult.id}")
    client.get(f"/attachments/{objects['attachment'].id}").close()
    client.post(f"/consults/{consult.id}/notes",
                data={"body": "Fever down.", "attachments": [(io.BytesIO(image_bytes()),
                                                               "x.jpg")]},
                content_type="multipart/form-data")
    client.post(f"/notes/{objects['note'].id}/amend", data={"body": "Temp 38.9."})
    client.post("/logout")
    client.post("/login", data={"email": admin.email, "password": PASSWORD})
    client.post(f"/admin/users/{clinician.id}", data={"role": "coordinator", "clinic": "",
                                                      "active": "y"})
    client.post(f"/admin/users/{objects['other_clinician'].id}",
                data={"role": "clinician", "clinic": str(objects["other_clinic"].id)})

    mine = {(e.action, e.consult_id) for e in _events(actor_id=clinician.id, ip=IP)}
    for action in ("consult.viewed", "attachment.viewed", "note.created", "note.amended",
                   "attachment.created"):
        assert (action, consult.id) in mine, action
    for action in ("login.failed", "login.succeeded", "logout"):
        assert (action, None) in mine, action
    admin_actions = {e.action for e in _events(actor_id=admin.id, ip=IP)}
    assert {"user.role_changed", "user.deactivated", "login.succeeded"} <= admin_actions
    (role_change,) = _events(action="user.role_changed")
    assert role_change.object_id == clinician.id
    assert '"new": "coordinator"' in role_change.detail
