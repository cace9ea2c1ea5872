"""Headless Chromium with a fake camera: clinician and specialist see each other."""

from __future__ import annotations

import time
from typing import Any

import pytest

from telehealth.extensions import db
from telehealth.video.models import VideoSession
from tests.conftest import ARTIFACTS, PASSWORD

pytestmark = pytest.mark.browser

REMOTE_PLAYING = """() => {
  const v = document.querySelector('.tile.remote video');
  return v ? {w: v.videoWidth, h: v.videoHeight, t: v.currentTime} : null;
}"""


def sign_in(page: Any, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main #submit")
    page.wait_for_url(f"{base_url}/")


def wait_playing(page: Any, timeout: float = 20.0) -> dict[str, float]:
    """Wait until the remote video has a size and its time moves on."""
    deadline = time.monotonic() + timeout
    first = None
    while time.monotonic() < deadline:
        state = page.evaluate(REMOTE_PLAYING)
        if state and state["w"] > 0 and state["h"] > 0:
            if first is None:
                first = state
            elif state["t"] > first["t"] + 0.5:
                return dict(state)
        page.wait_for_timeout(200)
    raise AssertionError(f"remote video never played: {page.evaluate(REMOTE_PLAYING)}; "
                         f"status: {page.text_content('#call-status')}")


def wait_call_ended(timeout: float = 10.0) -> None:
    """Both pages left: wait until the server has closed the session (no writes in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        sessions = db.session.query(VideoSession).all()
        if sessions and all(s.ended_at is not None for s in sessions):
            return
        time.sleep(0.1)
    raise AssertionError("the call did not end after both pages left")


def test_clinician_and_specialist_see_each_other(
        browser: Any, live_server: str, call_consult: Any, world: dict[str, Any]) -> None:
    pages = []
    for who in ("clinician", "specialist"):
        context = browser.new_context(viewport={"width": 900, "height": 800})
        page = context.new_page()
        sign_in(page, live_server, world[who].email)
        page.goto(f"{live_server}/consults/{call_consult.id}/call")
        pages.append(page)
    try:
        for page in pages:
            state = wait_playing(page)
            assert state["w"] > 0 and state["h"] > 0
        ARTIFACTS.joinpath("screenshots").mkdir(parents=True, exist_ok=True)
        pages[0].screenshot(path=str(ARTIFACTS / "screenshots" / "video-call.png"),
                            full_page=True)
        # Chat from the page reaches the other page.
        pages[0].fill("#chat-input", "Hello from the clinic")
        pages[0].click("#chat-form button")
        pages[1].wait_for_selector("#chat-log li:has-text('Hello from the clinic')",
                                   timeout=10_000)
    finally:
        for page in pages:
            page.click("#leave")
        wait_call_ended()
    # The pre-call check previews the fake camera, measures the link and gives a verdict.
    check = pages[0]
    check.goto(f"{live_server}/call/check")
    check.wait_for_selector("#verdict[data-verdict]", timeout=15_000)
    assert check.get_attribute("#verdict", "data-verdict") == "video"
    assert check.evaluate("document.getElementById('preview').videoWidth") > 0
    for page in pages:
        page.context.close()
