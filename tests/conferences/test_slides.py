"""PDF decks as conference slides: each page becomes a still image slide, within a page
limit, a size limit and a time limit; a hostile or broken PDF is refused with a sentence,
never a 500, and nothing of a refused deck is kept.

The pages are rendered by a job (render_conference_deck), not in the upload: what can be
told at once (size, not a PDF, scripts) is refused at once; the rest is the deck's
outcome, kept for the uploader's room page. Under TESTING the job runs at the commit."""

from __future__ import annotations

import io
import subprocess
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from telehealth import uploads
from telehealth.conferences import services
from telehealth.conferences.models import ConferenceDeck, ConferenceSlide, DeckStatus
from telehealth.consults.models import Attachment
from telehealth.errors import InvalidInput, TooLarge
from telehealth.extensions import db
from telehealth.jobs import tasks
from telehealth.jobs.runner import periodic_jobs
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
            db.session.commit()  # the deck's job runs now (TESTING), in its own transaction
            return added

    return add


def slides_kept() -> int:
    return db.session.query(ConferenceSlide).count()


def last_deck() -> ConferenceDeck:
    db.session.expire_all()
    deck = db.session.query(ConferenceDeck).order_by(ConferenceDeck.id.desc()).first()
    assert deck is not None
    return deck


def stored_files(app: Flask) -> int:
    """Files in the uploads store besides the consult's photo: a slide is two (full and
    preview), and nothing else stays (a refused deck's pages, a deck's PDF once its job
    is done)."""
    photos = {name for a in db.session.query(Attachment)
              for name in (a.stored_name, a.preview_name)}
    return sum(1 for p in uploads.upload_dir().iterdir() if p.name not in photos)


@needs_renderer
def test_each_page_of_a_deck_becomes_a_slide(app: Flask, add: Any) -> None:
    added = add(("title.png", image_bytes_png()), ("ward round.pdf", pillow_deck(3)))
    assert [s.position for s in added] == [1]  # the image at once; the deck by its job
    deck = last_deck()
    assert (deck.status, deck.error, deck.slide_count) == (DeckStatus.READY, None, 3)
    slides = services.slides_of(deck.session_id)
    assert [s.position for s in slides] == [1, 2, 3, 4]
    assert [s.content_type for s in slides] == ["image/png"] * 4
    with Image.open(stored_path(slides[1].stored_name)) as page:
        assert max(page.size) == uploads.PDF_PAGE_LONG_SIDE
        assert near(page.getpixel((10, 10)), (0, 90, 160))
    with Image.open(stored_path(slides[3].stored_name)) as page:
        assert near(page.getpixel((10, 10)), (80, 90, 160))  # the pages keep their order
    # The deck's PDF is gone from the uploads store: only the slides' files are left.
    assert deck.stored_name is None and stored_files(app) == 2 * 4
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
    add(("huge.pdf", page))
    [slide] = services.slides_of(last_deck().session_id)
    with Image.open(stored_path(slide.stored_name)) as image:
        assert image.size == (uploads.PDF_PAGE_LONG_SIDE, uploads.PDF_PAGE_LONG_SIDE)


SCRIPT_PDF = handmade_pdf(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] "
                          b"/AA << /O << /S /JavaScript /JS (app.alert(1)) >> >> >>")


@needs_renderer
@pytest.mark.parametrize(("name", "data", "message"), [
    ("script.pdf", SCRIPT_PDF, "script.pdf has scripts, embedded files or extra data"),
    ("tail.pdf", pillow_deck(1) + b"<html><script>alert(1)</script>",
     "tail.pdf has scripts, embedded files or extra data"),
])
def test_a_hostile_deck_is_refused_at_once(app: Flask, add: Any, name: str, data: bytes,
                                           message: str) -> None:
    """Scripts, embedded files and data past the end are found without rendering: the
    upload is refused whole, as before."""
    with pytest.raises(InvalidInput, match=message):
        add(("first.png", image_bytes_png()), (name, data))
    assert slides_kept() == 0 and db.session.query(ConferenceDeck).count() == 0
    assert stored_files(app) == 0


@needs_renderer
@pytest.mark.parametrize(("name", "data", "message"), [
    ("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\n%%EOF\n",
     "broken.pdf could not be read as a PDF"),
    ("long.pdf", pillow_deck(4), "long.pdf has too many pages: at most 3"),
])
def test_a_broken_or_long_deck_is_refused_with_a_sentence(
        app: Flask, add: Any, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes,
        message: str) -> None:
    """Found only by rendering: the images of the upload are kept, the deck is refused
    whole (no page of it kept) and says why."""
    monkeypatch.setitem(app.config, "CONFERENCE_DECK_MAX_PAGES", 3)
    add(("first.png", image_bytes_png()), (name, data))
    deck = last_deck()
    assert deck.status == DeckStatus.FAILED and deck.error is not None
    assert message in deck.error
    assert slides_kept() == 1 and stored_files(app) == 2  # the image's; no page, no PDF


@needs_renderer
def test_a_deck_never_goes_past_the_sessions_slide_limit(app: Flask, add: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CONFERENCE_MAX_SLIDES", 3)
    add(("first.png", image_bytes_png()), ("deck.pdf", pillow_deck(3)))
    assert "too many pages: at most 2" in (last_deck().error or "")
    # A full session refuses a deck at once.
    with pytest.raises(InvalidInput, match="at most 3 slides"):
        add(*[(f"{n}.png", image_bytes_png()) for n in range(2)], ("deck.pdf", pillow_deck(1)))
    assert slides_kept() == 1


@needs_renderer
def test_a_session_filled_while_its_deck_waits_refuses_the_deck(
        app: Flask, add: Any, conference: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CONFERENCE_MAX_SLIDES", 3)
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr("telehealth.jobs.enqueue", lambda *args, **kw: asked.append(args))
    add(("deck.pdf", pillow_deck(1)))
    add(*[(f"{n}.png", image_bytes_png()) for n in range(3)])
    [(name, deck_id)] = asked
    assert tasks.run(app, name, deck_id) == "failed"
    assert "at most 3 slides" in (last_deck().error or "") and slides_kept() == 3


@needs_renderer
def test_a_deck_too_large_or_too_slow_is_refused(app: Flask, add: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "CONFERENCE_DECK_MAX_BYTES", 1024 * 1024)
    with pytest.raises(TooLarge, match="larger than the limit of 1 MB"):
        add(("big.pdf", pillow_deck(1) + b"%" + b"x" * 1024 * 1024 + b"\n%%EOF\n"))

    def slow(command: list[str], **kwargs: Any) -> Any:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(uploads.subprocess, "run", slow)
    add(("slow.pdf", pillow_deck(1)))
    assert "slow.pdf took too long to read" in (last_deck().error or "")
    assert slides_kept() == 0 and stored_files(app) == 0


def test_without_a_renderer_the_refusal_says_which_formats_are_accepted(
        add: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads.shutil, "which", lambda name: None)
    assert services.deck_limits() is None
    with pytest.raises(InvalidInput, match="save each slide as a JPEG or PNG image"):
        add(("deck.pdf", pillow_deck(1)))
    assert db.session.query(ConferenceDeck).count() == 0


@needs_renderer
def test_the_upload_returns_before_the_pages_and_the_job_makes_them(
        app: Flask, add: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked for once the upload commits; the deck waits with its PDF in the uploads store;
    the job makes its slides, removes the PDF, and a second run of it changes nothing."""
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr("telehealth.jobs.enqueue", lambda *args, **kw: asked.append(args))
    assert add(("deck.pdf", pillow_deck(2))) == []
    deck = last_deck()
    assert asked == [("render_conference_deck", deck.id)]
    assert deck.status == DeckStatus.PREPARING and slides_kept() == 0
    assert stored_path(deck.stored_name or "").read_bytes().startswith(b"%PDF-")
    assert tasks.run(app, "render_conference_deck", deck.id) == "ready"
    assert tasks.run(app, "render_conference_deck", deck.id) is None
    assert slides_kept() == 2 and last_deck().stored_name is None and stored_files(app) == 4


@needs_renderer
def test_a_fault_while_preparing_refuses_the_deck_and_keeps_nothing(
        app: Flask, add: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr("telehealth.jobs.enqueue", lambda *args, **kw: asked.append(args))
    add(("deck.pdf", pillow_deck(2)))
    real = uploads.check_upload
    pages_stored = []

    def second_page_breaks(stream: Any, filename: str) -> Any:
        pages_stored.append(filename)
        if len(pages_stored) == 2:
            raise OSError("disk full")
        return real(stream, filename)

    monkeypatch.setattr(uploads, "check_upload", second_page_breaks)
    with pytest.raises(OSError, match="disk full"):  # the job's log says what broke
        tasks.run(app, *asked[0])
    deck = last_deck()
    assert deck.status == DeckStatus.FAILED
    assert deck.error == ("deck.pdf could not be turned into slides; please upload it again, "
                          "or each slide as an image.")
    assert slides_kept() == 0 and stored_files(app) == 0


@needs_renderer
def test_a_deck_whose_job_was_lost_is_prepared_by_the_periodic_run(
        app: Flask, add: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("telehealth.jobs.enqueue", lambda *args, **kw: None)  # lost
    add(("old.pdf", pillow_deck(1)))
    add(("new.pdf", pillow_deck(1)))
    old, new = db.session.query(ConferenceDeck).order_by(ConferenceDeck.id).all()
    old.created_at -= timedelta(seconds=app.config["CONFERENCE_DECK_RETRY_SECONDS"] + 1)
    db.session.commit()
    assert periodic_jobs(app)["render_conference_deck"] == \
        app.config["CONFERENCE_DECK_RETRY_SECONDS"]
    assert tasks.run(app, "render_conference_deck") == 1  # the new one's job may still come
    db.session.expire_all()
    assert (old.status, new.status) == (DeckStatus.READY, DeckStatus.PREPARING)
    assert slides_kept() == 1
