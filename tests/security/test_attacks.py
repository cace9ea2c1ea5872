"""The deny path: one test per attack, each failing if its defence breaks."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from telehealth import uploads
from telehealth.consults.models import Attachment
from telehealth.errors import InvalidInput
from telehealth.extensions import db
from telehealth.notes.models import Note
from tests.conftest import PASSWORD, image_bytes

PLAIN_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def _upload_dir(app) -> Path:
    return Path(app.config["UPLOAD_DIR"])


def _files(app) -> set[str]:
    return {p.name for p in _upload_dir(app).iterdir()}


def _post_note(client, consult, name, content, body="See the file."):
    return client.post(f"/consults/{consult.id}/notes",
                       data={"body": body, "attachments": [(io.BytesIO(content), name)]},
                       content_type="multipart/form-data")


@pytest.fixture()
def signed_in_case(client, auth, build_case):
    objects = build_case("accepted")
    auth.login(objects["clinician"])
    return objects


# ---------------------------------------------------------------- CSRF


def test_csrf_token_is_required_for_every_state_change(app, client, signed_in_case,
                                                        monkeypatch):
    consult = signed_in_case["consult"]
    notes_before = db.session.scalar(db.select(db.func.count(Note.id)))
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    forged = [
        client.post(f"/consults/{consult.id}/notes", data={"body": "forged"}),
        client.post(f"/consults/{consult.id}/cancel"),
        client.post(f"/api/consults/{consult.id}/cancel", json={}),
        client.post("/logout"),
    ]
    for response in forged:
        assert response.status_code == 400
        assert "did not come from this site" in (response.text or "") or response.is_json
    assert db.session.scalar(db.select(db.func.count(Note.id))) == notes_before
    assert client.get("/").status_code == 200  # still signed in: the sign-out was refused
    # The same request with the page's token goes through.
    page = client.get(f"/consults/{consult.id}").text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post(f"/consults/{consult.id}/notes",
                           data={"body": "genuine", "csrf_token": token})
    assert response.status_code == 302


def test_sign_in_form_needs_its_token(app, client, world, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    response = client.post("/login", data={"email": world["clinician"].email,
                                           "password": PASSWORD})
    assert response.status_code == 400  # refused before the password is even looked at
    assert "/login" in client.get("/").headers["Location"]


# ---------------------------------------------------------------- open redirect


@pytest.mark.parametrize("target", [
    "//evil.example/", "https://evil.example/", "http:/evil.example", "/\\evil.example",
    "\\\\evil.example", "javascript:alert(1)", "/\t/evil.example", " //evil.example",
    "///evil.example",
])
def test_next_never_leaves_the_site(client, world, target):
    response = client.post("/login", query_string={"next": target},
                           data={"email": world["clinician"].email, "password": PASSWORD})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "evil" not in location and "javascript" not in location
    assert location.startswith("/") and not location.startswith("//")


def test_next_keeps_local_paths(client, world):
    response = client.post("/login", query_string={"next": "/consults/new?x=1"},
                           data={"email": world["clinician"].email, "password": PASSWORD})
    assert response.headers["Location"] == "/consults/new?x=1"


# ---------------------------------------------------------------- uploads


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "not a JPEG"),
    ("x.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "not a JPEG"),
    ("x.html", b"<html><script>alert(1)</script></html>", "not a JPEG"),
    ("x.jpg", b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>", "not a valid image"),
    ("x.pdf", PLAIN_PDF.replace(b"trailer", b"<html><script>alert(1)</script>trailer"),
     "plain PDF"),
    ("x.pdf", PLAIN_PDF.replace(b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/JavaScript"
                                b"/JS(app.alert(1))>>"), "plain PDF"),
    ("x.pdf", PLAIN_PDF + b"PK\x03\x04 a zip after the end", "plain PDF"),
    ("bomb.png", _png_header_only(30_000, 30_000), "has too many pixels"),
    ("bomb.png", _png_header_only(8_000, 8_000), "has too many pixels"),
])
def test_polyglots_svg_and_bombs_are_refused(app, client, signed_in_case, name, content,
                                            message):
    before = _files(app)
    response = _post_note(client, signed_in_case["consult"], name, content)
    assert response.status_code == 400
    assert message in response.text
    assert "See the file." in response.text  # the note's text is still in the form
    assert _files(app) == before


def test_jpeg_with_a_trailing_payload_is_stored_without_it(app, client, signed_in_case):
    payload = b"<script>alert(1)</script>PK\x03\x04"
    response = _post_note(client, signed_in_case["consult"], "photo.jpg",
                          image_bytes() + payload)
    assert response.status_code == 302
    stored = db.session.scalars(db.select(Attachment).order_by(Attachment.id.desc())).first()
    data = (_upload_dir(app) / stored.stored_name).read_bytes()
    assert payload not in data and data.startswith(b"\xff\xd8\xff")


def test_a_plain_pdf_is_accepted(client, signed_in_case):
    assert _post_note(client, signed_in_case["consult"], "lab.pdf", PLAIN_PDF).status_code == 302


def test_photo_location_and_camera_are_removed(app, client, signed_in_case):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel X"  # Model
    exif[0x8825] = {1: "S", 2: (1.0, 40.0, 12.0), 3: "E", 4: (29.0, 13.0, 5.0)}  # GPS
    original = image_bytes(exif=exif.tobytes())
    assert b"PhoneModel" in original
    response = _post_note(client, signed_in_case["consult"], "wound.jpg", original)
    assert response.status_code == 302
    stored = db.session.scalars(db.select(Attachment).order_by(Attachment.id.desc())).first()
    data = (_upload_dir(app) / stored.stored_name).read_bytes()
    assert b"PhoneModel" not in data and b"Exif" not in data
    with Image.open(io.BytesIO(data)) as img:
        assert not img.getexif()


@pytest.mark.parametrize("name", ["../../../../tmp/evil.jpg", "..\\..\\evil.jpg",
                                  "/etc/cron.d/evil.jpg", "evil\x00.jpg.exe", "\u202egpj.exe"])
def test_file_names_are_never_used_as_paths(app, client, signed_in_case, tmp_path, name):
    response = _post_note(client, signed_in_case["consult"], name, image_bytes())
    assert response.status_code == 302
    stored = db.session.scalars(db.select(Attachment).order_by(Attachment.id.desc())).first()
    assert stored.stored_name.isalnum() and len(stored.stored_name) == 32
    assert "/" not in stored.original_name and "\\" not in stored.original_name
    assert "\x00" not in stored.original_name and "\u202e" not in stored.original_name
    assert (_upload_dir(app) / stored.stored_name).is_file()
    download = client.get(f"/attachments/{stored.id}")
    download.close()
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "/" not in disposition.split("filename")[1]


def test_stored_names_cannot_escape_the_upload_folder():
    with pytest.raises(InvalidInput):
        uploads.stored_path("../secret_key")


def test_oversized_request_body_gets_413(app, client, signed_in_case, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 50_000)
    response = _post_note(client, signed_in_case["consult"], "big.pdf",
                          PLAIN_PDF + b" " * 60_000)
    assert response.status_code == 413
    assert "too large" in response.text


def test_oversized_attachment_gets_413_and_keeps_the_text(app, client, signed_in_case,
                                                          monkeypatch):
    monkeypatch.setitem(app.config, "MAX_ATTACHMENT_BYTES", 1000)
    response = _post_note(client, signed_in_case["consult"], "big.pdf",
                          PLAIN_PDF + b" " * 2000, body="Keep this text")
    assert response.status_code == 413
    assert "larger than the limit" in response.text and "Keep this text" in response.text


# ---------------------------------------------------------------- escaping


def test_notes_are_plain_text_escaped_by_the_template(client, signed_in_case):
    payload = '<b>bold</b><script>alert(1)</script><img src=x onerror=alert(1)>'
    client.post(f"/consults/{signed_in_case['consult'].id}/notes", data={"body": payload})
    page = client.get(f"/consults/{signed_in_case['consult'].id}").text
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---------------------------------------------------------------- control characters


def test_control_characters_are_removed_from_forms_and_json(client, signed_in_case):
    consult = signed_in_case["consult"]
    response = client.post(f"/consults/{consult.id}/notes",
                           data={"body": "Dose\x00 5\x1b[31m mg\tdaily\r\nthen stop"})
    assert response.status_code == 302
    note = db.session.scalars(db.select(Note).order_by(Note.id.desc())).first()
    assert note.current.body == "Dose 5[31m mg\tdaily\r\nthen stop"
    response = client.post(f"/api/consults/{consult.id}/cancel",
                           json={"reason": "dup\x00licate"})
    assert response.status_code == 200
