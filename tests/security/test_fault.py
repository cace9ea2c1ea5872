"""A database failure half-way through saving a note leaves nothing behind and loses no text."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from telehealth.consults.models import Attachment
from telehealth.extensions import db
from telehealth.notes.models import Note, NoteRevision
from tests.conftest import image_bytes


@pytest.fixture()
def failing_insert(app):
    """Make the next INSERT into the given table fail as a lost connection would."""
    armed: dict[str, str] = {}

    def before_execute(conn, cursor, statement, parameters, context, executemany):
        table = armed.get("table")
        if table and statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            armed.clear()
            raise OperationalError(statement, parameters, Exception("server closed the "
                                                                    "connection"))

    event.listen(db.engine, "before_cursor_execute", before_execute)
    yield armed
    event.remove(db.engine, "before_cursor_execute", before_execute)


def _counts():
    return tuple(db.session.scalar(select(func.count(model.id)))
                 for model in (Note, NoteRevision, Attachment))


@pytest.mark.parametrize("table", ["attachments", "audit_events"])
def test_db_error_while_saving_a_note_with_a_photo(app, client, auth, build_case,
                                                   failing_insert, table):
    objects = build_case("accepted")
    auth.login(objects["specialist"])
    upload_dir = Path(app.config["UPLOAD_DIR"])
    files_before, counts_before = set(upload_dir.iterdir()), _counts()
    failing_insert["table"] = table
    text = "Start amoxicillin 500 mg three times a day; review in 48 h."
    response = client.post(f"/consults/{objects['consult'].id}/notes",
                           data={"body": text,
                                 "attachments": [(io.BytesIO(image_bytes()), "rash.jpg")]},
                           content_type="multipart/form-data")
    assert not failing_insert, "the fault was not triggered"
    assert response.status_code == 503
    assert "could not be saved" in response.text
    assert text in response.text  # the author's text is still in the form
    db.session.expire_all()
    assert _counts() == counts_before
    assert set(upload_dir.iterdir()) == files_before  # the stored photo was removed again
    # And the next try works.
    response = client.post(f"/consults/{objects['consult'].id}/notes", data={"body": text})
    assert response.status_code == 302
