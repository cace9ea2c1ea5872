"""Chromium on a link that drops: photos shrink before they are sent, what was typed survives
a failed send and a reload, and one submission makes one consult."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from telehealth import uploads
from telehealth.consults.models import Attachment, Consult
from telehealth.extensions import db
from tests.conftest import sign_in
from tests.robustness.photos import metadata_carriers, phone_jpeg

PROBLEM = "Fièvre depuis cinq jours, éruption sur le tronc."


def _fill(page: Any, world: dict[str, Any]) -> None:
    page.goto(page.url.split("/consults")[0].rstrip("/") + "/consults/new")
    page.fill("input[name=patient_ref]", "GOMA-17")
    page.fill("input[name=patient_age_years]", "7")
    page.fill("textarea[name=presenting_problem]", PROBLEM)
    page.fill("textarea[name=question]", "Rougeole ?")
    page.select_option("select[name=specialty]", str(world["specialist"].specialties[0].id))


def _count() -> int:
    db.session.expire_all()
    return db.session.scalar(db.select(db.func.count(Consult.id))) or 0


def test_a_phone_photo_is_shrunk_sent_small_and_shown_as_a_preview(
        live_server, browser, world, tmp_path: Path):
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(phone_jpeg((4000, 3000)))  # 12 megapixels, every metadata carrier
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, live_server, world["clinician"].email)
        _fill(page, world)
        page.set_input_files("input[name=attachments]", str(photo))
        posted: list[int] = []
        page.on("request", lambda r: posted.append(len(r.post_data_buffer or b""))
                if r.method == "POST" and r.url.endswith("/consults/new") else None)
        page.click("main #submit")
        page.wait_for_url(re.compile(r"/consults/\d+$"), timeout=60_000)
        assert posted and posted[-1] < 600 * 1024, posted  # not the 12 MP original
        (attachment,) = db.session.scalars(db.select(Attachment)).all()
        stored = uploads.stored_path(attachment.stored_name).read_bytes()
        preview = uploads.stored_path(attachment.preview_name).read_bytes()
        assert len(preview) <= 30 * 1024
        assert metadata_carriers(stored) == [] and metadata_carriers(preview) == []
        # The consult page fetches the preview, never the full photo.
        images: list[tuple[str, int]] = []
        page.on("response", lambda r: images.append((r.url, len(r.body())))
                if "/attachments/" in r.url else None)
        page.reload(wait_until="networkidle")
        assert images and all(url.endswith("/preview") for url, _size in images), images
        assert all(size <= len(preview) for _url, size in images)
        full = page.request.get(f"{live_server}/attachments/{attachment.id}")
        assert metadata_carriers(full.body()) == []
    finally:
        context.close()


def test_a_dropped_connection_loses_nothing_and_makes_one_consult(live_server, browser,
                                                                  world):
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, live_server, world["clinician"].email)
        _fill(page, world)
        context.set_offline(True)
        page.click("main #submit")
        page.wait_for_selector("#send-status:not([hidden])")
        page.wait_for_function(
            "() => document.querySelector('#send-status span').textContent.includes('dropped')")
        assert _count() == 0
        context.set_offline(False)
        page.reload()
        assert page.input_value("textarea[name=presenting_problem]") == PROBLEM
        # Sent, but the answer is lost on the way back: the server made the consult...
        def lose_answer(route: Any) -> None:
            route.fetch()
            route.abort()
        page.route("**/consults/new", lose_answer)
        page.click("main #submit")
        page.wait_for_function(
            "() => document.querySelector('#send-status span').textContent.includes('dropped')")
        assert _count() == 1
        page.unroute("**/consults/new")
        page.reload()
        assert page.input_value("textarea[name=presenting_problem]") == PROBLEM
        # ...and sending again finds it instead of making a second one.
        page.click("main #submit")
        page.wait_for_url(re.compile(r"/consults/\d+$"))
        assert _count() == 1
        # Made: the draft is gone, a new form starts empty.
        page.goto(f"{live_server}/consults/new")
        assert page.input_value("textarea[name=presenting_problem]") == ""
    finally:
        context.close()
