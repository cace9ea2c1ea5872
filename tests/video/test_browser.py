"""Headless Chromium with a fake camera: clinician and specialist see each other."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from telehealth.extensions import db
from telehealth.video.hub import get_hub
from telehealth.video.models import VideoParticipation, VideoSession
from telehealth.video.probe import probes_for
from tests.conftest import screenshot, sign_in
from tests.video.test_forwarding import engine_state

pytestmark = pytest.mark.browser

REMOTE_PLAYING = """() => {
  const v = document.querySelector('.tile.remote video');
  return v ? {w: v.videoWidth, h: v.videoHeight, t: v.currentTime} : null;
}"""


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
        app: Any, browser: Any, live_server: str, call_consult: Any, world: dict[str, Any]) -> None:
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
        # Chromium keeps to the `low` profile it is told (camera size, frame rate, maxBitrate),
        # so the server forwards its video as it is, re-encoding nothing.
        deadline = time.monotonic() + 15
        while True:
            slots = [slot for p in engine_state(app, call_consult.id).values()
                     for slot in p["slots"].values()]
            if len(slots) == 2 and not any(s["video"] or s["video_encoded"] for s in slots):
                break
            assert time.monotonic() < deadline, slots
            time.sleep(0.5)
        screenshot(pages[0], "video-call")
        # Chat from the page reaches the other page.
        pages[0].fill("#chat-input", "Hello from the clinic")
        pages[0].click("#chat-form button")
        pages[1].wait_for_selector("#chat-log li:has-text('Hello from the clinic')",
                                   timeout=10_000)
    finally:
        for page in pages:
            page.click("#leave")
        wait_call_ended()
    for page in pages:
        page.context.close()


NUMBER = re.compile(r"^[\d\s,.\u202f\u00a0]+ (ms|kbps)$")


def test_pre_call_check_measures_the_media_server_and_sets_the_call_profile(
        app: Any, browser: Any, live_server: str, call_consult: Any,
        world: dict[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, live_server, world["clinician"].email)
        page.goto(f"{live_server}/call/check")
        page.wait_for_selector("#verdict[data-verdict]", timeout=30_000)
        # The fake camera is previewed; round trip and both directions were measured through
        # the probe connection, and loopback carries a standard-quality video call.
        assert page.evaluate("document.getElementById('preview').videoWidth") > 0
        figures = {name: page.text_content(f"#{name}").strip() for name in ("rtt", "down", "up")}
        assert all(NUMBER.match(text) for text in figures.values()), figures
        assert int(re.sub(r"\D", "", figures["up"])) >= 832  # kbps: the standard profile's
        assert page.get_attribute("#verdict", "data-verdict") == "video"
        assert page.get_attribute("#verdict", "data-profile") == "standard"
        assert page.text_content("#verdict") == "Your connection is good enough for a video call."
        assert page.text_content("#quality") == "Standard"
        assert page.is_visible("#remembered")
        screenshot(page, "precall-check")
        hub = get_hub(app)
        deadline = time.monotonic() + 5  # the page says goodbye: nothing stays open
        while probes_for(hub.engine).open_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert probes_for(hub.engine).open_count() == 0
        # The call starts with the remembered profile (unless the address names one).
        for query, profile in (("", "standard"), ("?profile=low", "low")):
            page.goto(f"{live_server}/consults/{call_consult.id}/call{query}")
            page.wait_for_selector("#call-status:has-text('Connected')", timeout=20_000)
            assert page.eval_on_selector("#profile", "s => s.value") == profile
            page.click("#leave")
            wait_call_ended()
        db.session.expire_all()
        assert [p.profile for p in db.session.query(VideoParticipation)
                .order_by(VideoParticipation.id)] == ["standard", "low"]
    finally:
        context.close()


# What a clinic behind a firewall that blocks UDP sees: no candidate pair can work.
NO_ROUTE = """(() => {
  const Real = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config) {
    return new Real(Object.assign({}, config, { iceServers: [], iceTransportPolicy: "relay" }));
  };
  window.RTCPeerConnection.prototype = Real.prototype;
})();"""


def test_pre_call_check_without_a_media_path_says_written_consult(
        browser: Any, live_server: str, world: dict[str, Any]) -> None:
    context = browser.new_context()
    context.add_init_script(NO_ROUTE)
    page = context.new_page()
    try:
        sign_in(page, live_server, world["specialist"].email)
        page.goto(f"{live_server}/call/check")
        page.wait_for_selector("#verdict[data-verdict]", timeout=40_000)
        assert page.get_attribute("#verdict", "data-verdict") == "written"
        assert "No connection to the media server" in page.text_content("#verdict")
        assert page.text_content("#rtt") == "…"
        assert page.text_content("#quality") == "Low (slow links)"
        assert page.evaluate("localStorage.getItem('telehealth.callProfile')") == "low"
    finally:
        context.close()
