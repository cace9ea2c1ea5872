"""Hostile files at every upload point: a clear refusal (4xx with the reason), and nothing
stored half (no row, no file left in the upload folder)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from telehealth.consults.models import Attachment, Consult
from telehealth.extensions import db
from telehealth.notes.models import Note
from tests.conftest import image_bytes, take_consult
from tests.consults.test_lifecycle import _new_consult_form


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of a few hundred bytes that declares ten billion pixels (all one colour)."""
    rows = zlib.compress(b"\x00" * 64, 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                8, 2, 0, 0, 0))
            + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))


def truncated_jpeg() -> bytes:
    image = Image.effect_noise((400, 300), 64).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    data = out.getvalue()
    return data[: len(data) // 2]


SCRIPT = b"<script>alert(document.cookie)</script>"
HOSTILE: dict[str, tuple[str, bytes, str]] = {
    # name: (file name, content, what the refusal says)
    "pdf_html_polyglot": ("report.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n<html>" + SCRIPT
                          + b"</html>\n%%EOF\n", "scripts, embedded files or extra data"),
    "pdf_with_javascript": ("report.pdf", b"%PDF-1.4\n1 0 obj<</S/JavaScript/JS(app.alert(1))"
                            b">>endobj\n%%EOF\n", "scripts, embedded files or extra data"),
    "pdf_with_trailer": ("report.pdf", b"%PDF-1.4\n%%EOF\nPK\x03\x04zipped", "extra data"),
    "png_bomb": ("scan.png", png_bomb(), "too many pixels"),
    "truncated_jpeg": ("photo.jpg", truncated_jpeg(), "is not a valid image"),
    "svg_with_script": ("photo.svg", b'<svg xmlns="http://www.w3.org/2000/svg">' + SCRIPT
                        + b"</svg>", "is not a JPEG, PNG or PDF"),
    "svg_named_png": ("photo.png", b"<?xml version='1.0'?><svg>" + SCRIPT + b"</svg>",
                      "is not a JPEG, PNG or PDF"),
    "html_named_jpg": ("photo.jpg", b"<!doctype html>" + SCRIPT, "is not a JPEG, PNG or PDF"),
    "exe_named_jpg": ("photo.jpg", b"MZ\x90\x00" + b"\x00" * 200, "is not a JPEG, PNG or PDF"),
    "jpeg_header_only": ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 50, "not a valid image"),
    "gif": ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "is not a JPEG, PNG or PDF"),
    "empty": ("empty.jpg", b"", "is empty"),
}


def uploaded_files(app: Any) -> list[str]:
    folder = app.config["UPLOAD_DIR"]
    return os.listdir(folder) if os.path.isdir(folder) else []


def count(model: Any) -> int:
    return db.session.scalar(db.select(db.func.count(model.id)))


def refused(response: Any, reason: str) -> None:
    assert 400 <= response.status_code < 500, response.status_code
    assert reason in response.get_data(as_text=True), reason


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_new_consult_with_a_hostile_file_is_refused_whole(app, client, auth, world, kind):
    name, content, reason = HOSTILE[kind]
    auth.login(world["clinician"])
    form = _new_consult_form(specialty=str(world["specialist"].specialties[0].id))
    form["attachments"] = [(io.BytesIO(image_bytes()), "good.jpg"), (io.BytesIO(content), name)]
    refused(client.post("/consults/new", data=form, content_type="multipart/form-data"),
            reason)
    assert count(Consult) == 0 and count(Attachment) == 0
    assert uploaded_files(app) == []  # the good photo stored first went with the rollback


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_note_with_a_hostile_file_is_refused_whole(app, client, auth, world, make_consult,
                                                      kind):
    name, content, reason = HOSTILE[kind]
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    db.session.commit()
    before = set(uploaded_files(app))
    auth.login(world["specialist"])
    response = client.post(f"/consults/{consult.id}/notes", data={
        "body": "See the scan.", "language": "en",
        "attachments": [(io.BytesIO(image_bytes()), "good.jpg"), (io.BytesIO(content), name)]},
        content_type="multipart/form-data")
    refused(response, reason)
    assert "See the scan." in response.text  # what was typed comes back
    assert count(Note) == 0
    assert set(uploaded_files(app)) == before


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_licence_scan_is_refused(app, client, auth, world, kind):
    from telehealth.roster.profiles import get_profile

    name, content, reason = HOSTILE[kind]
    specialist = world["specialist"]
    auth.login(specialist)
    response = client.post(f"/roster/{specialist.id}/credential", data={
        "licence_number": "CMQ-1", "licence_body": "Council", "licence_country": "ca",
        "expires_on": "2030-01-01", "document": (io.BytesIO(content), name)},
        content_type="multipart/form-data")
    if kind == "empty":
        # An empty file input is "no new scan" to a browser; nothing may be stored for it.
        assert response.status_code < 500
    else:
        refused(response, reason)
    db.session.expire_all()
    assert get_profile(specialist).document_name in (None, "")
    assert uploaded_files(app) == []


def test_a_polyglot_photo_is_stored_as_pixels_only(app, client, auth, world):
    """A valid JPEG carrying HTML (or a zip) after its end: phones append data there too
    (motion photos), so it is not refused, but re-encoding keeps only the pixels."""
    auth.login(world["clinician"])
    form = _new_consult_form(specialty=str(world["specialist"].specialties[0].id))
    form["attachments"] = [(io.BytesIO(image_bytes() + SCRIPT + b"PK\x03\x04"), "photo.jpg")]
    assert client.post("/consults/new", data=form,
                       content_type="multipart/form-data").status_code == 302
    for stored in uploaded_files(app):
        data = Path(app.config["UPLOAD_DIR"], stored).read_bytes()
        assert SCRIPT not in data and b"PK\x03\x04" not in data


@pytest.mark.parametrize(("path", "role"), [("/roster/import", "coordinator"),
                                             ("/admin/areas/import", "admin")])
@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00\x00binary\x00junk", b"PK\x03\x04" + b"\x00" * 100, png_bomb(),
    b"email,name\n" + b"a" * 200_000 + b"\n", b"{" * 10_000, b'{"type": "FeatureCollection"',
    b"",
], ids=["binary", "zip", "png", "long-line", "deep-json", "cut-json", "empty"])
def test_a_hostile_data_file_is_refused_clearly(app, client, auth, world, path, role, content):
    auth.login(world[role])
    response = client.post(path, data={"file": (io.BytesIO(content), "data.csv")},
                           content_type="multipart/form-data")
    assert 400 <= response.status_code < 500, response.status_code
    assert uploaded_files(app) == []


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "form"])
def test_text_where_a_file_is_expected_is_no_file(app, client, auth, world, make_consult,
                                                  as_json):
    """A hand-made request names the file fields but sends text: the text is not taken for a
    file (nothing stored), and the rest of the request is handled as usual."""
    def post(path: str, data: dict[str, Any]) -> Any:
        return client.post(path, json=data) if as_json else client.post(path, data=data)

    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    db.session.commit()
    before = set(uploaded_files(app))
    auth.login(world["clinician"])
    form = _new_consult_form(specialty=str(world["specialist"].specialties[0].id))
    assert post("/consults/new", {**form, "attachments": "x"}).status_code < 500
    auth.logout()
    auth.login(world["specialist"])
    assert post(f"/consults/{consult.id}/notes", {"body": "Seen.", "language": "en",
                                                  "attachments": ["x", "y"]}).status_code < 500
    assert post(f"/roster/{world['specialist'].id}/credential", {
        "licence_number": "1", "licence_body": "Council", "licence_country": "ca",
        "expires_on": "2030-01-01", "document": "x"}).status_code < 500
    assert set(uploaded_files(app)) == before
    assert count(Attachment) == 0
