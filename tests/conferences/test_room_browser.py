"""Acceptance 2: a presenter and three clinic participants in headless Chromium (fake camera
and microphone): slides, a raised hand, a moderator's mute; screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from telehealth.conferences.models import AttendanceEvent, AttendanceKind
from telehealth.conferences.room import get_conference_hub, room_id
from telehealth.extensions import db
from tests.conftest import image_bytes, screenshot, sign_in

pytestmark = pytest.mark.browser

PEOPLE = ("specialist", "clinician", "clinician2", "clinician3")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def wait_js(page: Any, function: str, what: str, timeout: float = 20.0) -> None:
    """Wait until the page's function returns something true (polled from here: the page's
    CSP forbids the eval behind Playwright's wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(function):
        assert time.monotonic() < deadline, f"{what}: {page.text_content('#call-status')}"
        page.wait_for_timeout(200)


def li_of(page: Any, user: Any) -> str:
    return f'#people li[data-participant="u{user.id}"]'


def test_presenter_slides_hand_and_mute_with_four_browsers(
        app: Any, browser: Any, room_server: str, live_conference: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    session = live_conference["session"]
    engine = get_conference_hub(app).engine
    mutes: list[tuple[str, str, bool]] = []
    original = engine.set_muted

    def spy(room: str, participant_id: str, muted: bool) -> None:
        mutes.append((room, participant_id, muted))
        original(room, participant_id, muted)

    monkeypatch.setattr(engine, "set_muted", spy)
    db.session.commit()
    pages: dict[str, Any] = {}
    try:
        for who in PEOPLE:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            page = context.new_page()
            sign_in(page, room_server, live_conference[who].email)
            page.goto(f"{room_server}/conferences/sessions/{session.id}")
            page.click("#enter-room")
            pages[who] = page
        for who, page in pages.items():
            page.wait_for_selector("#call-status:has-text('Connected')", timeout=30_000)
            wait_js(page, "() => document.querySelectorAll('#people li').length === 4",
                    f"{who} sees four people")
        presenter = pages["specialist"]
        # Remote pictures arrive (today's engine forwards all three others to each page).
        wait_js(presenter, "() => [...document.querySelectorAll('.tile.remote video')]"
                ".filter(v => v.videoWidth > 0).length >= 1", "a remote picture", 30)

        # The engine's send_video reaches the page, which stops its video encoder (the
        # server receives no more frames from it) and starts it again.
        paused_id, room = f"u{live_conference['clinician3'].id}", room_id(session.id)
        hub = get_conference_hub(app)

        async def since_last_frame() -> float:
            held = engine.rooms.get(room)
            assert held is not None
            return time.monotonic() - held.participants[paused_id].feeds["video"].last_frame_at

        hub.on_video_wanted(room, paused_id, True)  # whatever the engine said so far
        wait_for(lambda: engine.run(since_last_frame()) < 0.5, "clinician3 sends video")
        hub.on_video_wanted(room, paused_id, False)
        wait_for(lambda: engine.run(since_last_frame()) > 1.0, "the page stopped its video",
                 timeout=2.9)
        hub.on_video_wanted(room, paused_id, True)
        wait_for(lambda: engine.run(since_last_frame()) < 0.5, "the page sends video again",
                 timeout=5)

        # The presenter uploads two slides and shows the second; every participant sees it.
        presenter.set_input_files("#slide-files", [
            {"name": "intro.jpg", "mimeType": "image/jpeg",
             "buffer": image_bytes(size=(640, 360))},
            {"name": "cases.png", "mimeType": "image/png",
             "buffer": image_bytes("PNG", size=(640, 360))}])
        presenter.click("#slide-upload button")
        presenter.wait_for_selector("#upload-status:has-text('Slides added.')", timeout=10_000)
        presenter.click("#slide-list li:nth-child(2) button")
        for who in ("clinician", "clinician2", "clinician3"):
            page = pages[who]
            page.wait_for_selector("#slide-caption:has-text('Slide 2 of 2')", timeout=10_000)
            wait_js(page, "() => document.getElementById('slide-image').complete && "
                    "document.getElementById('slide-image').naturalWidth > 0",
                    f"{who} sees the slide")
        # The `low` pages get the small still.
        assert "/preview" in pages["clinician"].get_attribute("#slide-image", "src")
        screenshot(pages["clinician"], "conference-room-slide")

        # A participant raises a hand; the moderator sees it first in the list and lowers it.
        raiser, raiser_user = pages["clinician"], live_conference["clinician"]
        raiser.click("#hand")
        raiser.wait_for_selector("#hand[aria-pressed='true']", timeout=10_000)
        presenter.wait_for_selector(f"{li_of(presenter, raiser_user)}.hand", timeout=10_000)
        assert presenter.get_attribute("#people li:first-child", "data-participant") == \
            f"u{raiser_user.id}"
        screenshot(presenter, "conference-room-moderator-hand")
        presenter.click(f"{li_of(presenter, raiser_user)} button:has-text('Lower hand')")
        raiser.wait_for_selector("#hand[aria-pressed='false']", timeout=10_000)
        presenter.wait_for_selector(f"{li_of(presenter, raiser_user)}:not(.hand)",
                                    timeout=10_000)

        # The moderator mutes another participant: the server stops forwarding their audio,
        # and their page mutes the microphone and says so.
        muted_page, muted_user = pages["clinician2"], live_conference["clinician2"]
        presenter.click(f"{li_of(presenter, muted_user)} button:has-text('Mute')")
        muted_page.wait_for_selector("#room-notice:has-text('A moderator muted your microphone')",
                                     timeout=10_000)
        assert muted_page.is_disabled("#toggle-mic")
        assert muted_page.evaluate(
            "() => document.getElementById('local-video').srcObject.getAudioTracks()[0].enabled") \
            is False
        pages["clinician3"].wait_for_selector(f"{li_of(pages['clinician3'], muted_user)}"
                                              ".muted-person", timeout=10_000)
        assert mutes == [(room_id(session.id), f"u{muted_user.id}", True)]
        screenshot(muted_page, "conference-room-muted")
        screenshot(presenter, "conference-room-presenter")

        # Attendance: the media server reported each connection as a join.
        def joins() -> set[int]:
            db.session.expire_all()
            return {e.user_id for e in db.session.query(AttendanceEvent)
                    .filter_by(session_id=session.id, kind=AttendanceKind.JOIN)}
        wait_for(lambda: len(joins()) == 4, "four joins recorded")
    finally:
        for page in pages.values():
            page.click("#leave")
    def leaves() -> int:
        db.session.expire_all()
        return db.session.query(AttendanceEvent).filter_by(
            session_id=session.id, kind=AttendanceKind.LEAVE).count()
    wait_for(lambda: leaves() == 4, "four leaves recorded")
    wait_for(lambda: not engine.participants(room_id(session.id)), "the room emptied")
    for page in pages.values():
        page.context.close()


def test_the_room_page_is_light_and_fits_a_phone_in_english_and_arabic(
        browser: Any, room_server: str, live_conference: dict[str, Any]) -> None:
    """The page budget of every other page (40 KB cold, 8 KB warm, signaling left out) and no
    sideways scrolling at 375 px, left to right and right to left, with the hub's controls."""
    from tests.weight.test_page_weight import COLD_LIMIT, PHONE, WARM_LIMIT, Meter

    session = live_conference["session"]
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        sign_in(page, room_server, live_conference["specialist"].email)
        meter = Meter(context, page)
        url = f"{room_server}/conferences/sessions/{session.id}/room"
        for language in ("en", "ar"):
            live_conference["specialist"].locale = language
            db.session.commit()
            meter.cdp.send("Network.clearBrowserCache")

            def in_room(load: Callable[[], Any]) -> None:
                load()
                page.wait_for_selector("#call-status:has-text('Connected'), "
                                       "#call-status:has-text('متصل')", timeout=30_000)
                # The browser's own late request (favicon.ico) counts with this load.
                page.wait_for_timeout(1000)

            cold = meter.measure(lambda: in_room(lambda: page.goto(url,
                                                                   wait_until="networkidle")))
            warm = meter.measure(lambda: in_room(lambda: page.reload(wait_until="networkidle")))
            assert cold <= COLD_LIMIT and warm <= WARM_LIMIT, (language, cold, warm)
            assert page.get_attribute("html", "dir") == ("rtl" if language == "ar" else "ltr")
            sideways = page.evaluate("() => document.documentElement.scrollWidth"
                                     " - window.innerWidth")
            assert sideways <= 0, (language, sideways)
            screenshot(page, f"conference-room-phone-{language}")
        page.click("#leave")
    finally:
        context.close()


def _picture(page: Any, peer_id: str) -> dict[str, Any] | None:
    """The size and decoded frame count of a remote tile's video (None: no picture yet)."""
    result: dict[str, Any] | None = page.evaluate(
        "(id) => { const v = document.querySelector(`.tile.remote[data-peer='${id}'] video`);"
        " if (!v || !v.videoWidth) return null;"
        " return {w: v.videoWidth, h: v.videoHeight,"
        " frames: v.getVideoPlaybackQuality().totalVideoFrames, paused: v.paused}; }", peer_id)
    return result


def _wait_for_moving_picture(page: Any, peer_id: str, wide: bool, what: str) -> dict[str, Any]:
    """Wait until the peer's tile plays a picture of that shape (wide: 16:9, the fake
    screen; else 4:3, the `low` camera) whose frames keep coming."""
    def shaped() -> dict[str, Any] | None:
        picture = _picture(page, peer_id)
        if picture is None or picture["paused"]:
            return None
        return picture if (picture["w"] / picture["h"] > 1.6) == wide else None

    first = wait_for(shaped, what, timeout=30)
    return wait_for(lambda: (p := shaped()) is not None
                    and p["frames"] >= first["frames"] + 3 and p, f"{what}: frames keep coming")


@contextmanager
def _in_the_room(browser: Any, room_server: str, live_conference: dict[str, Any],
                 without_camera: str = "", people: tuple[str, ...] = ("specialist", "clinician")
                 ) -> Iterator[dict[str, Any]]:
    """The presenter's and a clinician's pages (or `people`'s) in the room (`low` profile),
    connected; `without_camera`: whose page finds no camera or microphone. They leave
    afterwards."""
    session = live_conference["session"]
    db.session.commit()
    pages: dict[str, Any] = {}
    try:
        for who in people:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            if who == without_camera:
                context.add_init_script(
                    "navigator.mediaDevices.getUserMedia = () =>"
                    " Promise.reject(new DOMException('none', 'NotFoundError'));")
            page = context.new_page()
            pages[who] = page
            sign_in(page, room_server, live_conference[who].email)
            page.goto(f"{room_server}/conferences/sessions/{session.id}/room?profile=low")
            page.wait_for_selector("#call-status:has-text('Connected')", timeout=30_000)
        yield pages
    finally:
        for page in pages.values():
            page.click("#leave")
            page.context.close()


def test_the_presenter_shares_a_screen_that_the_others_receive(
        app: Any, browser: Any, room_server: str, live_conference: dict[str, Any]) -> None:
    """The presenter's screen (Chromium's fake screen under --use-fake-ui-for-media-stream:
    1280x720) goes out in place of their camera (the `low` profile's 320x240): another
    participant's tile of the presenter shows it, keeps showing it after the room moves
    (a new connection), and shows the camera again when the sharing stops."""
    session = live_conference["session"]
    presenter_id = f"u{live_conference['specialist'].id}"
    with _in_the_room(browser, room_server, live_conference) as pages:
        presenter, viewer = pages["specialist"], pages["clinician"]
        _wait_for_moving_picture(viewer, presenter_id, False, "the presenter's camera")

        presenter.click("#share-screen")
        presenter.wait_for_selector("#share-screen:has-text('Stop sharing')", timeout=10_000)
        assert presenter.is_hidden("#room-notice")
        _wait_for_moving_picture(viewer, presenter_id, True, "the presenter's screen")
        screenshot(viewer, "conference-room-screen-share")

        # The room moves (a new connection, a new offer): the screen is still what goes out.
        get_conference_hub(app).move_members(session.id, None)
        for page in pages.values():  # "moving…", then connected again
            page.wait_for_selector("#call-status:not(:has-text('Connected'))", timeout=10_000)
        for page in pages.values():
            page.wait_for_selector("#call-status:has-text('Connected')", timeout=30_000)
        _wait_for_moving_picture(viewer, presenter_id, True, "the screen after the move")
        assert presenter.text_content("#share-screen") == "Stop sharing"

        presenter.click("#share-screen")
        presenter.wait_for_selector("#share-screen:has-text('Share my screen')",
                                    timeout=10_000)
        _wait_for_moving_picture(viewer, presenter_id, False, "the camera again")


def test_a_presenter_without_a_camera_shares_a_screen(
        browser: Any, room_server: str, live_conference: dict[str, Any]) -> None:
    """A connection that sends no video cannot start without a new offer: sharing the
    screen asks for one, and the screen reaches the others."""
    presenter_id = f"u{live_conference['specialist'].id}"
    with _in_the_room(browser, room_server, live_conference,
                      without_camera="specialist") as pages:
        presenter, viewer = pages["specialist"], pages["clinician"]
        presenter.click("#share-screen")
        presenter.wait_for_selector("#share-screen:has-text('Stop sharing')", timeout=10_000)
        _wait_for_moving_picture(viewer, presenter_id, True, "the presenter's screen")


def test_a_silent_clinic_presenters_screen_is_pinned_for_everyone(
        app: Any, browser: Any, room_server: str, live_conference: dict[str, Any],
        approved_case: Any) -> None:
    """A clinic presents its case with its microphone off while the hub talks: on the `low`
    profile each page gets one video, the active speaker's, yet the shared screen is what
    the others get (the room pins the sharer), and keeps coming past VIDEO_PAUSE_AFTER."""
    from telehealth.video.engine import VIDEO_PAUSE_AFTER

    session = live_conference["session"]
    engine = get_conference_hub(app).engine
    presenter_id = f"u{live_conference['clinician'].id}"
    viewer_id = f"u{live_conference['clinician2'].id}"

    def viewer_videos() -> list[str]:
        return [who for who, mids in engine.layout(room_id(session.id), viewer_id).items()
                if mids["video"]]

    with _in_the_room(browser, room_server, live_conference,
                      people=("specialist", "clinician2", "clinician")) as pages:
        presenter, viewer = pages["clinician"], pages["clinician2"]
        presenter.click("#toggle-mic")  # silent: never the active speaker
        wait_for(lambda: viewer_videos() and presenter_id not in viewer_videos(),
                 "the viewer's one video is someone else's")

        presenter.click("#share-screen")
        presenter.wait_for_selector("#share-screen:has-text('Stop sharing')", timeout=10_000)
        wait_for(lambda: viewer_videos() == [presenter_id], "the pinned screen's lane")
        _wait_for_moving_picture(viewer, presenter_id, True, "the silent presenter's screen")
        viewer.wait_for_selector(f'{li_of(viewer, live_conference["clinician"])}'
                                 ':has-text("sharing their screen")', timeout=10_000)
        time.sleep(VIDEO_PAUSE_AFTER + 1)  # not asked to pause: frames keep coming
        _wait_for_moving_picture(viewer, presenter_id, True, "the screen, still")

        presenter.click("#share-screen")  # stopped: unpinned, last-N again
        wait_for(lambda: viewer_videos() and presenter_id not in viewer_videos(),
                 "the viewer's video back to the speakers")


def test_a_share_taken_over_stops_the_first_sharers_screen(
        app: Any, browser: Any, room_server: str, live_conference: dict[str, Any],
        approved_case: Any) -> None:
    """The clinic's presenter shares; the specialist shares over it: the presenter's page
    stops its screen capture, its button offers to share again, and it says who took
    over; the others see the specialist's screen."""
    presenter_id = f"u{live_conference['clinician'].id}"
    with _in_the_room(browser, room_server, live_conference,
                      people=("specialist", "clinician", "clinician2")) as pages:
        hub_page, presenter, viewer = (pages["specialist"], pages["clinician"],
                                       pages["clinician2"])
        presenter.evaluate("""() => {  // keep the captured screen's track, to look at it
          const real = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
          navigator.mediaDevices.getDisplayMedia = (constraints) => real(constraints)
            .then((stream) => { window.screenTrack = stream.getVideoTracks()[0]; return stream; });
        }""")
        presenter.click("#share-screen")
        presenter.wait_for_selector("#share-screen:has-text('Stop sharing')", timeout=10_000)
        _wait_for_moving_picture(viewer, presenter_id, True, "the presenter's screen")

        hub_page.click("#share-screen")
        hub_page.wait_for_selector("#share-screen:has-text('Stop sharing')", timeout=10_000)
        presenter.wait_for_selector("#share-screen:has-text('Share my screen')",
                                    timeout=10_000)
        assert presenter.text_content("#room-notice") == (
            f"{live_conference['specialist'].name} is sharing their screen now; "
            "yours has stopped.")
        wait_js(presenter, "() => window.screenTrack.readyState === 'ended'",
                "the presenter's screen capture stopped")
        _wait_for_moving_picture(viewer, f"u{live_conference['specialist'].id}", True,
                                 "the specialist's screen")
        assert get_conference_hub(app).pinned(live_conference["session"].id) == \
            f"u{live_conference['specialist'].id}"


def test_a_pdf_deck_is_listed_as_being_prepared_then_its_pages_appear(
        app: Any, browser: Any, room_server: str, live_conference: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload answers at once; the deck's pages appear when its job is done (no
    reload), and a deck the job refuses says why on the uploader's page."""
    from telehealth import uploads
    from telehealth.jobs import tasks
    from tests.conferences.test_slides import pillow_deck

    if not uploads.pdf_rendering_available():
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr("telehealth.jobs.enqueue", lambda *args, **kw: asked.append(args))
    with _in_the_room(browser, room_server, live_conference, people=("specialist",)) as pages:
        presenter = pages["specialist"]
        presenter.set_input_files("#slide-files", [
            {"name": "ward.pdf", "mimeType": "application/pdf", "buffer": pillow_deck(2)}])
        presenter.click("#slide-upload button")
        presenter.wait_for_selector("#decks li:has-text('ward.pdf is being prepared')",
                                    timeout=10_000)
        assert presenter.locator("#slide-list li").count() == 0
        assert tasks.run(app, *asked.pop()) == "ready"
        presenter.wait_for_selector("#upload-status:has-text('Slides added.')",
                                    timeout=10_000)
        assert presenter.locator("#slide-list li").count() == 2
        assert presenter.locator("#decks li").count() == 0

        presenter.set_input_files("#slide-files", [
            {"name": "broken.pdf", "mimeType": "application/pdf",
             "buffer": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\n%%EOF\n"}])
        presenter.click("#slide-upload button")
        presenter.wait_for_selector("#decks li:has-text('broken.pdf is being prepared')",
                                    timeout=10_000)
        assert tasks.run(app, *asked.pop()) == "failed"
        presenter.wait_for_selector(
            "#decks li.flash-error:has-text('broken.pdf could not be read as a PDF')",
            timeout=10_000)
        assert presenter.locator("#slide-list li").count() == 2
