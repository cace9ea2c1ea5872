"""Checking and storing uploaded files: content decides the type, never the name."""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import subprocess  # nosec B404 - pdftoppm, with a fixed argument list, no shell
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from flask import current_app
from flask_babel import gettext as _
from PIL import Image, ImageOps
from sqlalchemy.orm import Session

from telehealth import transaction
from telehealth.errors import InvalidInput, TooLarge

ALLOWED_TYPES = {"image/jpeg", "image/png", "application/pdf"}


PREVIEW_LONG_SIDE = 480
PREVIEW_MAX_BYTES = 30 * 1024  # what a page shows: a photo costs this much on a 256 kbps link


@dataclass(frozen=True)
class CheckedFile:
    data: bytes
    content_type: str
    original_name: str
    preview: bytes | None = None  # a small JPEG, for photos


def sniff(data: bytes) -> str | None:
    """Return the content type from the file's first bytes, or None if not allowed."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def clean_name(name: str) -> str:
    """An uploaded file's name as shown to people (never a path)."""
    # Only ever displayed, never used as a path: keep the last component, printable.
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:200] or "file"


def _pixels_only(img: Image.Image) -> Image.Image:
    """The picture upright and with nothing else: no EXIF (GPS, device), XMP, IPTC, ICC
    profile, JPEG comment or PNG text chunk survives, whatever Pillow would carry over."""
    upright = ImageOps.exif_transpose(img)  # phones store rotation in EXIF, which goes
    clean = Image.new(upright.mode, upright.size)
    clean.paste(upright)
    if upright.mode == "P":
        clean.putpalette(upright.getpalette() or [])
    clean.info = {}
    return clean


def _flatten(img: Image.Image) -> Image.Image:
    """RGB on white: JPEG has no transparency."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def make_preview(img: Image.Image) -> bytes:
    """A JPEG of at most PREVIEW_MAX_BYTES, long side PREVIEW_LONG_SIDE or less."""
    small = _flatten(img)
    small.thumbnail((PREVIEW_LONG_SIDE, PREVIEW_LONG_SIDE))
    while True:
        for quality in (75, 65, 55, 45, 35):
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=quality, optimize=True, progressive=True)
            if out.tell() <= PREVIEW_MAX_BYTES:
                return out.getvalue()
        # Very busy pictures: smaller still until it fits.
        small.thumbnail((small.width * 3 // 4, small.height * 3 // 4))


def _reencode_image(data: bytes, content_type: str, name: str) -> tuple[bytes, bytes]:
    """Decode and re-encode a photo (proves it is an image, drops every metadata carrier);
    return it and its preview."""
    max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise InvalidInput(_("%(name)s has too many pixels.", name=name))
            img.load()
            clean = _pixels_only(img)
            out = io.BytesIO()
            if content_type == "image/jpeg":
                _flatten(clean).save(out, format="JPEG", quality=85, optimize=True)
            else:
                clean.save(out, format="PNG", optimize=True)
            return out.getvalue(), make_preview(clean)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(_("%(name)s has too many pixels.", name=name)) from exc
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not an image"
        raise InvalidInput(_("%(name)s is not a valid image.", name=name)) from exc


# A PDF that runs code, carries files, or hides HTML that a browser might render is refused.
_PDF_ACTIVE = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFiles?|RichMedia|XFA)\b")
_HTML_MARKERS = re.compile(rb"<(script|html|svg|iframe|body|object|embed)\b", re.IGNORECASE)


def _check_pdf(data: bytes, filename: str) -> None:
    """Refuse PDF polyglots: active content, embedded HTML, or data after the end marker."""
    if _PDF_ACTIVE.search(data) or _HTML_MARKERS.search(data) \
            or not data.rstrip().endswith(b"%%EOF"):
        raise InvalidInput(
            _("%(name)s has scripts, embedded files or extra data; save it again as a plain PDF.",
              name=clean_name(filename))
        )


def check_upload(stream: IO[bytes], filename: str) -> CheckedFile:
    """Read an upload, check its size and content, and return it ready to store."""
    limit = current_app.config["MAX_ATTACHMENT_BYTES"]
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(
            _("%(name)s is larger than the limit of %(mb)s MB.", name=clean_name(filename),
              mb=limit // (1024 * 1024))
        )
    if not data:
        raise InvalidInput(_("%(name)s is empty.", name=clean_name(filename)))
    content_type = sniff(data)
    if content_type is None:
        raise InvalidInput(
            _("%(name)s is not a JPEG, PNG or PDF file.", name=clean_name(filename))
        )
    preview = None
    if content_type.startswith("image/"):
        data, preview = _reencode_image(data, content_type, clean_name(filename))
    else:
        _check_pdf(data, filename)
    return CheckedFile(data=data, content_type=content_type, original_name=clean_name(filename),
                       preview=preview)


# Rendering a PDF's pages (conference decks) runs Debian's pdftoppm (poppler-utils) in a
# process of its own: a hostile or broken PDF can crash it, loop or eat memory without
# touching the app, which stops it at PDF_MEMORY_BYTES of memory and its time limit.
PDF_MEMORY_BYTES = 1024 * 1024 * 1024
PDF_PAGE_LONG_SIDE = 1280  # pixels: a 720p slide, a few hundred KB a page
PDF_PAGE_MAX_FILE_BYTES = 64 * 1024 * 1024


def pdf_rendering_available() -> bool:
    """Whether this machine can turn PDF pages into images (pdftoppm installed)."""
    return shutil.which("pdftoppm") is not None


def check_pdf_deck(data: bytes, filename: str) -> None:
    """What can be said of a PDF deck at once, before its pages are rendered: refused when
    this server has no renderer, or the PDF has scripts, embedded files or extra data."""
    if not pdf_rendering_available():
        raise _no_renderer(clean_name(filename))
    _check_pdf(data, filename)


def _no_renderer(name: str) -> InvalidInput:
    return InvalidInput(_("%(name)s is a PDF, which this server cannot turn into slides: "
                          "save each slide as a JPEG or PNG image.", name=name))


def pdf_page_images(data: bytes, filename: str, max_pages: int, timeout: float) -> list[bytes]:
    """Each page of a PDF as a PNG image (long side PDF_PAGE_LONG_SIDE), in order.

    Refused with a message a person can act on: what `check_pdf_deck` refuses, more than
    `max_pages` pages, one the renderer cannot read, or one it cannot finish within
    `timeout` seconds. The PNGs still go through `check_upload`. Seconds of work: run it in
    a job, not in a request.
    """
    name = clean_name(filename)
    check_pdf_deck(data, filename)
    renderer, prlimit = shutil.which("pdftoppm"), shutil.which("prlimit")
    if renderer is None:  # removed since check_pdf_deck looked
        raise _no_renderer(name)
    with tempfile.TemporaryDirectory(prefix="telehealth-pdf-") as work:
        source = Path(work) / "deck.pdf"
        source.write_bytes(data)
        # One page past the limit: if it renders, the deck is too long (nothing further is
        # rendered, however many pages the file claims).
        # prlimit (util-linux, in every Debian) sets the limits in the child: no Python
        # runs between fork and exec, as it would with preexec_fn in a threaded server.
        limits = [f"--as={PDF_MEMORY_BYTES}", f"--cpu={int(timeout) + 1}",
                  f"--fsize={PDF_PAGE_MAX_FILE_BYTES}"]
        command = [*([prlimit, *limits, "--"] if prlimit else []),
                   renderer, "-png", "-scale-to", str(PDF_PAGE_LONG_SIDE), "-f", "1",
                   "-l", str(max_pages + 1), str(source), str(Path(work) / "page")]
        try:
            result = subprocess.run(  # nosec B603 - fixed program, our own arguments
                command, capture_output=True, timeout=timeout, check=False, cwd=work,
                stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
        except subprocess.TimeoutExpired as exc:
            raise InvalidInput(_("%(name)s took too long to read; save it again as a simpler "
                                 "PDF, or each slide as an image.", name=name)) from exc
        pages = sorted(Path(work).glob("page*.png"),
                       key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
        if result.returncode != 0 or not pages:
            raise InvalidInput(_("%(name)s could not be read as a PDF; save it again as a PDF, "
                                 "or each slide as an image.", name=name))
        if len(pages) > max_pages:
            raise InvalidInput(_("%(name)s has too many pages: at most %(n)d.", name=name,
                                 n=max_pages))
        return [page.read_bytes() for page in pages]


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_file(session: Session, data: bytes) -> str:
    """Write bytes under a new generated name and return it; removed again if the
    transaction that records it rolls back."""
    stored_name = secrets.token_hex(16)
    path = upload_dir() / stored_name
    with open(path, "xb") as fh:
        fh.write(data)
    transaction.after_rollback(partial(_remove, path), session)
    return stored_name


def store(session: Session, checked: CheckedFile) -> tuple[str, str]:
    """Write the file under a generated name; return (stored_name, sha256)."""
    return write_file(session, checked.data), hashlib.sha256(checked.data).hexdigest()


def stored_path(stored_name: str) -> Path:
    if not stored_name.isalnum():  # generated names are hex; anything else is not ours
        raise InvalidInput("bad stored name")
    return upload_dir() / stored_name


def remove_after_commit(session: Session, stored_name: str) -> None:
    """Remove a stored file once the transaction that lets go of it commits (kept if it
    rolls back)."""
    transaction.after_commit(partial(_remove, stored_path(stored_name)), session)


def _remove(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def preview_of(stored_name: str, preview_name: str | None) -> bytes:
    """The stored preview, or one made now from the full image (older uploads, a restore)."""
    if preview_name:
        try:
            return stored_path(preview_name).read_bytes()
        except FileNotFoundError:
            pass
    with Image.open(stored_path(stored_name)) as img:
        img.load()
        return make_preview(img)
