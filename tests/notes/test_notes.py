"""Notes are never edited in place: an amendment is a new revision, the old text stays."""

from __future__ import annotations

import pytest

from telehealth.errors import PermissionDenied
from telehealth.extensions import db
from telehealth.matching.services import accept_consult
from telehealth.notes.models import NoteRevision
from telehealth.notes.services import add_note, amend_note


@pytest.fixture()
def consult(world, make_consult):
    consult = make_consult(world["clinician"])
    accept_consult(consult, world["specialist"])
    db.session.commit()
    return consult


def test_amendment_keeps_the_old_text_visible(client, auth, world, consult):
    note = add_note(consult, world["clinician"], "BP 150/90.")
    db.session.commit()
    auth.login(world["clinician"])
    response = client.post(f"/notes/{note.id}/amend", data={"body": "BP 150/95 (re-measured)."})
    assert response.status_code == 302
    page = client.get(f"/consults/{consult.id}").text
    assert "BP 150/95 (re-measured)." in page
    assert "BP 150/90." in page and "1 earlier version" in page
    bodies = [r.body for r in db.session.scalars(
        db.select(NoteRevision).where(NoteRevision.note_id == note.id).order_by(
            NoteRevision.number))]
    assert bodies == ["BP 150/90.", "BP 150/95 (re-measured)."]


def test_only_the_author_amends(world, consult):
    note = add_note(consult, world["clinician"], "Original.")
    with pytest.raises(PermissionDenied):
        amend_note(note, world["specialist"], "Rewritten by someone else.")


def test_amend_route_refuses_others(client, auth, world, consult):
    note = add_note(consult, world["clinician"], "Original.")
    db.session.commit()
    auth.login(world["specialist"])
    assert client.post(f"/notes/{note.id}/amend", data={"body": "x"}).status_code == 403
    db.session.expire_all()
    assert note.current.body == "Original."


def test_no_route_deletes_or_edits_notes_in_place(app):
    rules = {r.rule: r.methods for r in app.url_map.iter_rules() if "note" in r.rule}
    for methods in rules.values():
        assert not ({"PUT", "PATCH", "DELETE"} & set(methods))


def test_notes_closed_with_the_consult(client, auth, world, consult):
    add_note(consult, world["specialist"], "Answer.", answer=True)
    db.session.commit()
    auth.login(world["clinician"])
    client.post(f"/consults/{consult.id}/close", data={"outcome": "referred"})
    response = client.post(f"/consults/{consult.id}/notes", data={"body": "late"})
    assert response.status_code == 403
