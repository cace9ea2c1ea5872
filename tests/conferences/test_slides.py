"""PDF decks as conference slides: each page becomes a still image slide, within a page
limit, a size limit and a time limit; a hostile or broken PDF is refused with a sentence,
never a 500, and nothing of a refused upload is kept."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from telehealth import uploads
from telehealth.conferences import services
from telehealth.conferences.models import ConferenceSlide
from telehealth.errors import InvalidInput, TooLarge
from telehealth.extensions import db
from telehealth.uploads import stored_path

needs_renderer = pytest.mark.skipif(not uploads.pdf_rendering_available(),
                                    reason="pdftoppm (Debian poppler-utils) is not installed")


def pillow_deck(pages: int) -> bytes:
    """A PDF of `pages` pages, each a picture of its own colour (what Pillow writes)."""
    images = [Image.new("RGB", (800, 450), (40 * n % 256, 90, 160)) for n in range(pages)]
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:])
    return out.getvalue()


def handmade_pdf(page: bytes, extra: bytes = b"") -> bytes:
    """A one-page PDF with the page dictionary given (and an extra object), xref and all."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               page, *([extra] if extra else [])]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


@pytest.fixture
def add(app: Flask, conference: dict[str, Any]) -> Any:
    session, specialist = conference["session"], conference["specialist"]

    def add(*files: tuple[str, bytes]) -> list[ConferenceSlide]:
        with app.test_request_context():
            try:
                added = services.add_slides(session, specialist,
                                            [(io.BytesIO(data), name) for name, data in files])
            except Exception:
                db.session.rollback()  # what the request boundary does on a refusal
                raise
            db.session.commit()
            return added

    return add


def slides_kept() -> int:
    return db.session.query(ConferenceSlide).count()


@needs_renderer
def test_each_page_of_a_deck_becomes_a_slide(app: Flask, conference: dict[str, Any]) -> None:
    with app.test_request_context():
        added = services.add_slides(conference["session"], conference["specialist"],
                                    [(io.BytesIO(image_bytes_png()), "title.png"),
                                     (io.BytesIO(pillow_deck(3)), "ward round.pdf")])
        db.session.commit()
    assert [s.position for s in added] == [1, 2, 3, 4]
    assert [s.content_type for s in added] == ["image/png"] * 4
    with Image.open(stored_path(added[1].stored_name)) as page:
        assert max(page.size) == uploads.PDF_PAGE_LONG_SIDE
        assert near(page.getpixel((10, 10)), (0, 90, 160))
    with Image.open(stored_path(added[3].stored_name)) as page:
        assert near(page.getpixel((10, 10)), (80, 90, 160))  # the pages keep their order
    assert services.deck_limits() == {"mb": 15, "pages": 40}


def near(pixel: Any, colour: tuple[int, int, int]) -> bool:
    """Pillow stores a PDF's pictures as JPEG: a colour comes back within a few steps."""
    return all(abs(a - b) <= 4 for a, b in zip(pixel, colour, strict=True))


def image_bytes_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 360), (200, 200, 200)).save(out, format="PNG")
    return out.getvalue()


@needs_renderer
def test_a_page_as_large_as_a_city_is_drawn_at_slide_size(add: Any) -> None:
    page = handmade_pdf(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] >>")
    [slide] = add(("huge.pdf", page))
    with Image.open(stored_path(slide.stored_name)) as image:
        assert image.size == (uploads.PDF_PAGE_LONG_SIDE, uploads.PDF_PAGE_LONG_SIDE)


@needs_renderer
@pytest.mark.parametrize(("name", "data", "message"), [
    ("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\n%%EOF\n",
     "broken.pdf could not be read as a PDF"),
    ("script.pdf", handmade_pdf(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] "
                                b"/AA << /O << /S /JavaScript /JS (app.alert(1)) >> >> >>"),
     "script.pdf has scripts, embedded files or extra data"),
    ("tail.pdf", pillow_deck(1) + b"<html><script>alert(1)</script>",
     "tail.pdf has scripts, embedded files or extra data"),
    ("long.pdf", pillow_deck(4), "long.pdf has too many pages: at most 3"),
])
def test_a_hostile_broken_or_long_deck_is_refused_with_a_sentence(
        app: Flask, add: Any, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes,
        message: str) -> None:
    monkeypatch.setitem(app.config, "CONFERENCE_DECK_MAX_PAGES", 3)
    with pytest.raises(InvalidInput, match=message):
        add(("first.png", image_bytes_png()), (name, data))
    assert slides_kept() == 0


@needs_renderer
def test_a_deck_never_goes_past_the_sessions_slide_limit(app: Flask, add: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CONFERENCE_MAX_SLIDES", 3)
    with pytest.raises(InvalidInput, match="too many pages: at most 2"):
        add(("first.png", image_bytes_png()), ("deck.pdf", pillow_deck(3)))
    with pytest.raises(InvalidInput, match="at most 3 slides"):
        add(*[(f"{n}.png", image_bytes_png()) for n in range(3)], ("deck.pdf", pillow_deck(1)))
    assert slides_kept() == 0


@needs_renderer
def test_a_deck_too_large_or_too_slow_is_refused(app: Flask, add: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CONFERENCE_DECK_MAX_BYTES", 1024 * 1024)
    with pytest.raises(TooLarge, match="larger than the limit of 1 MB"):
        add(("big.pdf", pillow_deck(1) + b"%" + b"x" * 1024 * 1024 + b"\n%%EOF\n"))

    def slow(command: list[str], **kwargs: Any) -> Any:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(uploads.subprocess, "run", slow)
    with pytest.raises(InvalidInput, match="took too long to read"):
        add(("slow.pdf", pillow_deck(1)))
    assert slides_kept() == 0


def test_without_a_renderer_the_refusal_says_which_formats_are_accepted(
        add: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads.shutil, "which", lambda name: None)
    assert services.deck_limits() is None
    with pytest.raises(InvalidInput, match="save each slide as a JPEG or PNG image"):
        add(("deck.pdf", pillow_deck(1)))
