"""The /conference namespace: who gets in, what a moderator may do, bad input, attendance."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from PIL import Image

from telehealth.conferences import services
from telehealth.conferences.models import AttendanceEvent, AttendanceKind, ConferenceSlide
from telehealth.conferences.room import get_conference_hub, room_id
from telehealth.extensions import db
from telehealth.jobs import tasks
from telehealth.uploads import stored_path
from tests.conferences.conftest import RoomClient
from tests.conferences.test_slides import needs_renderer, pillow_deck
from tests.conftest import image_bytes
from tests.video.conftest import login_cookie

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture()
def engine_calls(app: Any, room_server: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """(method, args) of the engine calls made during the test."""
    calls: list[tuple] = []
    engine = get_conference_hub(app).engine
    for name in ("join", "answer", "add_candidate", "leave", "set_muted", "open_conference",
                 "set_profile", "set_receive_video", "set_pinned"):
        original = getattr(engine, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append((_name, args))
            return _original(*args)

        monkeypatch.setattr(engine, name, spy)
    return calls


def every_event(session_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("join", {"session_id": session_id, "profile": "low"}),
        ("answer", {"session_id": session_id, "sdp": SDP}),
        ("candidate", {"session_id": session_id, "candidate":
                       "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
                       "sdpMid": "0", "sdpMLineIndex": 0}),
        ("media", {"session_id": session_id, "video": False}),
        ("hand", {"session_id": session_id, "raised": True}),
        ("mute", {"session_id": session_id, "participant": "u1", "muted": True}),
        ("lower_hand", {"session_id": session_id, "participant": "u1"}),
        ("remove", {"session_id": session_id, "participant": "u1"}),
        ("slide", {"session_id": session_id, "slide_id": 1}),
        ("screen_share", {"session_id": session_id, "on": True}),
        ("keepalive", {"session_id": session_id}),
        ("leave", {"session_id": session_id}),
    ]


def refused(client: RoomClient, event: str, payload: Any) -> str:
    client.emit(event, payload)
    error = client.wait("call_error")
    assert error["event"] == event
    return str(error["message"])


def join(client: RoomClient, session_id: int) -> dict[str, Any]:
    client.emit("join", {"session_id": session_id, "profile": "low"})
    offer: dict[str, Any] = client.wait("offer")
    assert offer["session_id"] == session_id and offer["sdp"].startswith("v=0")
    return offer


def roster_where(client: RoomClient, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    found: dict[str, Any] = client.wait("roster", where=check)
    return found


def person(roster: dict[str, Any], participant_id: str) -> dict[str, Any]:
    return next(p for p in roster["people"] if p["id"] == participant_id)


def has(roster: dict[str, Any], participant_id: str, **values: Any) -> bool:
    """Whether the roster lists the participant, with these values."""
    return any(p["id"] == participant_id and all(p[k] == v for k, v in values.items())
               for p in roster["people"])


@pytest.mark.parametrize("who", ["other_clinician", "other_specialist", "admin"])
def test_people_outside_the_conference_are_refused_every_event(
        who: str, live_conference: dict[str, Any], engine_calls: list[tuple],
        room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    client = room_client(live_conference[who])
    for event, payload in every_event(session_id):
        assert refused(client, event, payload)
    assert client.drain("offer") == [] and client.drain("roster") == []
    assert engine_calls == []


def test_no_sign_in_cannot_connect(room_server: str) -> None:
    import socketio

    client = RoomClient(room_server, login_cookie(room_server, None))
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()


def test_members_join_and_see_each_other_in_the_roster(
        live_conference: dict[str, Any], engine_calls: list[tuple],
        room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    specialist = room_client(live_conference["specialist"])
    clinician = room_client(live_conference["clinician"])
    offer = join(specialist, session_id)
    join(clinician, session_id)
    roster = roster_where(specialist, lambda r: len(r["people"]) == 2)
    assert person(roster, offer["self"])["moderator"] is True
    assert [p["moderator"] for p in roster["people"]] == [True, False]  # the hub first
    # The engine runs the room as a conference with the configured plan.
    plans = [args[1] for name, args in engine_calls if name == "open_conference"]
    assert plans and plans[0].last_n == 4 and plans[0].audio_speakers == 3
    assert all(args[0] == room_id(session_id) for name, args in engine_calls if name == "join")


def test_only_moderators_mute_lower_hands_remove_and_show_slides(
        live_conference: dict[str, Any], engine_calls: list[tuple],
        room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    clinician, other = (room_client(live_conference["clinician"]),
                        room_client(live_conference["clinician2"]))
    join(clinician, session_id)
    target = join(other, session_id)["self"]
    for event, extra in (("mute", {"muted": True}), ("lower_hand", {}), ("remove", {}),
                         ("slide", {})):
        payload = {"session_id": session_id, "participant": target, **extra}
        if event == "slide":
            payload = {"session_id": session_id, "slide_id": None}
        assert refused(clinician, event, payload) == \
            "Only the hub's coordinators and specialists can do this."
    assert not [c for c in engine_calls if c[0] == "set_muted"]
    assert other.drain("muted") == [] and other.drain("removed") == []


def test_a_moderator_mutes_lowers_a_hand_and_removes(
        live_conference: dict[str, Any], engine_calls: list[tuple],
        room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    moderator = room_client(live_conference["specialist"])
    talker, raiser = (room_client(live_conference["clinician"]),
                      room_client(live_conference["clinician2"]))
    join(moderator, session_id)
    talker_id = join(talker, session_id)["self"]
    raiser_id = join(raiser, session_id)["self"]

    raiser.emit("hand", {"session_id": session_id, "raised": True})
    roster = roster_where(moderator, lambda r: any(p["hand"] for p in r["people"]))
    assert roster["people"][0]["id"] == raiser_id  # raised hands come first
    moderator.emit("lower_hand", {"session_id": session_id, "participant": raiser_id})
    roster_where(moderator, lambda r: not any(p["hand"] for p in r["people"]))

    moderator.emit("mute", {"session_id": session_id, "participant": talker_id, "muted": True})
    assert talker.wait("muted") == {"muted": True}
    assert person(roster_where(raiser, lambda r: person(r, talker_id)["muted"]),
                  talker_id)["muted"]
    assert ("set_muted", (room_id(session_id), talker_id, True)) in engine_calls
    # The mute holds when the muted person reloads the page.
    join(talker, session_id)
    assert engine_calls[-1] == ("set_muted", (room_id(session_id), talker_id, True))

    # A hub member cannot be removed; a participant can, and does not come back.
    moderator_id = live_conference["specialist"].id
    assert refused(moderator, "remove", {"session_id": session_id,
                                         "participant": f"u{moderator_id}"}) == \
        "Members of the hub cannot be removed from the room."
    moderator.emit("remove", {"session_id": session_id, "participant": raiser_id})
    assert raiser.wait("removed") == {"session_id": session_id}
    roster_where(moderator, lambda r: raiser_id not in {p["id"] for p in r["people"]})
    assert refused(raiser, "join", {"session_id": session_id, "profile": "low"}) == \
        "A moderator removed you from this session."


def test_bad_input_is_refused(live_conference: dict[str, Any],
                              room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    moderator = room_client(live_conference["specialist"])
    assert refused(moderator, "join", {"session_id": "1"}).startswith("The message's session_id")
    assert refused(moderator, "join", {"session_id": 2**40}).startswith("The message's")
    assert refused(moderator, "join", ["not", "a", "dict"]) == "The message is not understood."
    assert refused(moderator, "join", {"session_id": session_id, "profile": "ultra"}) == \
        "Unknown quality profile."
    assert refused(moderator, "join", {"session_id": 999999}) == "No such conference session."
    join(moderator, session_id)
    assert refused(moderator, "mute", {"session_id": session_id, "participant": "u999999",
                                       "muted": True}) == "This person is not in the room."
    assert refused(moderator, "mute", {"session_id": session_id, "participant": "u1"}) \
        .startswith("The message's muted")
    assert refused(moderator, "hand", {"session_id": session_id, "raised": "yes"}) \
        .startswith("The message's raised")
    assert refused(moderator, "answer", {"session_id": session_id, "sdp": "no"}) == \
        "The answer is not valid SDP."
    assert refused(moderator, "slide", {"session_id": session_id, "slide_id": 999999}) == \
        "No such slide in this session."
    # A huge message ends the connection.
    moderator.emit("hand", {"session_id": session_id, "raised": True, "pad": "x" * 5000})
    deadline = time.monotonic() + 5
    while moderator.connected:
        assert time.monotonic() < deadline, "the server kept the connection"
        time.sleep(0.05)


def test_attendance_comes_from_the_media_servers_connected_and_closed(
        app: Any, live_conference: dict[str, Any], room_client: Callable[..., RoomClient]
) -> None:
    """The engine's connection states make the joins and leaves; a reload closes the old
    connection (a leave) before the new one connects (a join)."""
    session = live_conference["session"]
    clinician = room_client(live_conference["clinician"])
    pid = join(clinician, session.id)["self"]
    hub = get_conference_hub(app)
    room = room_id(session.id)
    hub.on_connection_state(room, pid, "connected")
    hub.on_connection_state(room, pid, "connected")  # said twice: one join
    join(clinician, session.id)  # a reload
    hub.on_connection_state(room, pid, "connected")
    clinician.emit("leave", {"session_id": session.id})
    clinician.wait("left")
    deadline = time.monotonic() + 5
    while True:  # the engine reports "closed" from its own thread
        db.session.expire_all()
        kinds = [e.kind for e in db.session.query(AttendanceEvent).order_by(AttendanceEvent.id)]
        if len(kinds) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert kinds == [AttendanceKind.JOIN, AttendanceKind.LEAVE, AttendanceKind.JOIN,
                     AttendanceKind.LEAVE]
    row = services.attendance_of(session, live_conference["clinician"])
    assert row is not None and row.minutes == 0 and not row.eligible


def _exif_jpeg() -> bytes:
    img = Image.new("RGB", (800, 600), (20, 90, 160))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (1.0, 2.0, 3.0)}  # GPS
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_the_engine_asks_a_members_page_to_pause_and_resume_its_video(
        app: Any, live_conference: dict[str, Any], room_client: Callable[..., RoomClient]
) -> None:
    """Nobody shown their video for a while: the engine's on_video_wanted reaches that
    member's page (only theirs) as send_video, which call.js applies to its sender."""
    session = live_conference["session"]
    clinician = room_client(live_conference["clinician"])
    hub_person = room_client(live_conference["specialist"])
    pid = join(clinician, session.id)["self"]
    join(hub_person, session.id)
    hub = get_conference_hub(app)
    hub.on_video_wanted(room_id(session.id), pid, False)
    assert clinician.wait("send_video") == {"send": False}
    hub.on_video_wanted(room_id(session.id), pid, True)
    assert clinician.wait("send_video") == {"send": True}
    with pytest.raises(AssertionError):
        hub_person.wait("send_video", timeout=0.5)


def test_slides_are_reencoded_and_limited(app: Any, live_conference: dict[str, Any],
                                          room_server: str) -> None:
    session_id = live_conference["session"].id

    def post(user: Any, files: list[tuple[str, bytes]]) -> requests.Response:
        return post_slides(room_server, session_id, user, files)

    db.session.commit()
    ok = post(live_conference["specialist"], [("intro.jpg", _exif_jpeg()),
                                              ("chart.png", image_bytes("PNG"))])
    assert ok.status_code == 200, ok.text
    assert [s["position"] for s in ok.json()["slides"]] == [1, 2]
    db.session.expire_all()
    slide = db.session.query(ConferenceSlide).order_by(ConferenceSlide.id).first()
    assert slide is not None
    with Image.open(stored_path(slide.stored_name)) as stored:
        assert not stored.getexif() and "exif" not in stored.info
    # A participant cannot add slides; a broken PDF, a text file and an oversized image are
    # refused with a message saying why.
    denied = post(live_conference["clinician"], [("mine.jpg", image_bytes())])
    assert denied.status_code == 403
    pdf = post(live_conference["specialist"], [("deck.pdf", b"%PDF-1.4\n1 0 obj\n%%EOF\n")])
    if services.deck_limits():  # accepted; its job (at once under TESTING) refused it
        assert pdf.status_code == 200
        [deck] = pdf.json()["decks"]
        assert deck["status"] == "failed" and "could not be read as a PDF" in deck["error"]
    else:
        assert pdf.status_code == 400 and "JPEG or PNG image" in pdf.json()["error"]
    text = post(live_conference["specialist"], [("notes.txt", b"hello")])
    assert text.status_code == 400 and "is not a JPEG, PNG or PDF file" in text.json()["error"]
    app.config["CONFERENCE_SLIDE_MAX_BYTES"] = 1000
    try:
        big = post(live_conference["specialist"], [("big.jpg", _exif_jpeg())])
    finally:
        app.config["CONFERENCE_SLIDE_MAX_BYTES"] = 5 * 1024 * 1024
    assert big.status_code == 413 and "larger than the limit" in big.json()["error"]
    assert db.session.query(ConferenceSlide).count() == 2
    # Members see the slides (full and preview); people outside the conference do not.
    for user, status in ((live_conference["clinician"], 200),
                         (live_conference["other_clinician"], 404)):
        http = requests.Session()
        http.headers["Cookie"] = login_cookie(room_server, user)
        for size in ("full", "preview"):
            got = http.get(f"{room_server}/conferences/slides/{slide.id}/{size}")
            assert got.status_code == status
            if status == 200:
                assert got.headers["Content-Type"] == "image/jpeg"


def post_slides(room_server: str, session_id: int, user: Any,
                files: list[tuple[str, bytes]]) -> requests.Response:
    """The room page's upload, as its script sends it (JSON)."""
    http = requests.Session()
    http.headers["Cookie"] = login_cookie(room_server, user)
    page = http.get(f"{room_server}/conferences/sessions/{session_id}/room")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return http.post(f"{room_server}/conferences/sessions/{session_id}/slides",
                     data={"csrf_token": token},
                     files=[("slides", (name, data)) for name, data in files],
                     headers={"Accept": "application/json"})


def room_page(room_server: str, session_id: int, user: Any) -> str:
    http = requests.Session()
    http.headers["Cookie"] = login_cookie(room_server, user)
    page = http.get(f"{room_server}/conferences/sessions/{session_id}/room")
    assert page.status_code == 200
    return page.text


@needs_renderer
def test_a_deck_is_prepared_after_its_upload_and_the_room_pages_hear_how_it_went(
        app: Any, live_conference: dict[str, Any], room_server: str,
        room_client: Callable[..., RoomClient], monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = live_conference["session"].id
    specialist, coordinator = live_conference["specialist"], live_conference["coordinator"]
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr("telehealth.jobs.enqueue", lambda *args, **kw: asked.append(args))
    moderator = room_client(specialist)
    join(moderator, session_id)
    db.session.commit()

    # The upload answers before any page is rendered: the deck is being prepared.
    sent = post_slides(room_server, session_id, specialist, [("ward.pdf", pillow_deck(2))])
    assert sent.status_code == 200, sent.text
    [deck] = sent.json()["decks"]
    assert (deck["name"], deck["status"], sent.json()["slides"]) == ("ward.pdf", "preparing", [])
    assert asked == [("render_conference_deck", deck["id"])]
    preparing = "ward.pdf is being prepared: its pages appear in the list when they are ready."
    for user in (specialist, coordinator):  # every hub member's page lists it
        assert preparing in room_page(room_server, session_id, user)

    # The job makes the slides; the room's pages get the list.
    assert tasks.run(app, *asked.pop()) == "ready"
    ready = moderator.wait("deck")
    assert (ready["deck"]["status"], [s["position"] for s in ready["slides"]]) == \
        ("ready", [1, 2])
    page = room_page(room_server, session_id, specialist)
    assert preparing not in page and page.count("data-slide-id=") == 2

    # A deck the renderer cannot read: the room hears it was refused; the uploader's page
    # says why, another hub member's does not; the uploader's next upload clears it.
    post_slides(room_server, session_id, specialist,
                [("broken.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\n%%EOF\n")])
    assert tasks.run(app, *asked.pop()) == "failed"
    refused_deck = moderator.wait("deck")["deck"]
    assert refused_deck["status"] == "failed" and refused_deck["uploader"] == f"u{specialist.id}"
    why = "broken.pdf could not be read as a PDF"
    assert why in refused_deck["error"]
    assert why in room_page(room_server, session_id, specialist)
    assert why not in room_page(room_server, session_id, coordinator)
    post_slides(room_server, session_id, specialist, [("chart.png", image_bytes("PNG"))])
    assert why not in room_page(room_server, session_id, specialist)
    db.session.expire_all()
    assert db.session.query(ConferenceSlide).count() == 3


def test_the_presenter_shows_a_slide_to_everyone(
        live_conference: dict[str, Any], room_client: Callable[..., RoomClient]) -> None:
    session = live_conference["session"]
    slide = services.add_slides(session, live_conference["specialist"],
                                [(io.BytesIO(image_bytes()), "one.jpg")])[0]
    db.session.commit()
    moderator, clinician = (room_client(live_conference["specialist"]),
                            room_client(live_conference["clinician"]))
    join(moderator, session.id)
    join(clinician, session.id)
    moderator.emit("slide", {"session_id": session.id, "slide_id": slide.id})
    shown = clinician.wait("slide")["slide"]
    assert (shown["id"], shown["position"], shown["count"]) == (slide.id, 1, 1)
    assert shown["preview_url"].endswith(f"/conferences/slides/{slide.id}/preview")
    # Whoever joins later gets the current slide with the roster.
    late = room_client(live_conference["clinician2"])
    join(late, session.id)
    assert roster_where(late, lambda r: r["slide"] is not None)["slide"]["id"] == slide.id


def test_a_room_held_by_another_node_sends_the_page_there(
        app: Any, live_conference: dict[str, Any], engine_calls: list[tuple],
        room_client: Callable[..., RoomClient], room_server: str) -> None:
    """One process owns a session's room (the directory claim, as for calls): a page opened
    here while another node holds it opens its socket there, and a join here is refused."""
    session_id = live_conference["session"].id
    hub = get_conference_hub(app)
    other = "http://127.0.0.1:9"
    hub.release_claim(session_id)  # an earlier test's page may have claimed it here
    assert hub.directory.claim(session_id, other) == other
    try:
        http = requests.Session()
        http.headers["Cookie"] = login_cookie(room_server, live_conference["clinician"])
        page = http.get(f"{room_server}/conferences/sessions/{session_id}/room")
        assert f'data-socket-url="{other}"' in page.text
        assert "connect-src 'self' http://127.0.0.1:9 ws://127.0.0.1:9" in \
            page.headers["Content-Security-Policy"]
        where = http.get(f"{room_server}/conferences/sessions/{session_id}/room/where")
        assert where.json() == {"socket_url": other}
        client = room_client(live_conference["clinician"])
        client.emit("join", {"session_id": session_id, "profile": "low"})
        error = client.wait("call_error")
        assert (error["event"], error["moved"], error["node_url"]) == ("join", True, other)
        assert not [c for c in engine_calls if c[0] == "join"]
    finally:
        hub.directory.release(session_id, other)
    # A consult's call with the same number is another room: its claim is apart.
    assert hub.calls.directory.owner(session_id) is None


def test_a_presenter_sharing_a_screen_is_pinned_until_they_stop_or_leave(
        app: Any, live_conference: dict[str, Any], approved_case: Any,
        engine_calls: list[tuple], room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    room = room_id(session_id)
    moderator = room_client(live_conference["specialist"])
    presenter = room_client(live_conference["clinician"])
    other = room_client(live_conference["clinician2"])
    moderator_id = join(moderator, session_id)["self"]
    presenter_id = join(presenter, session_id)["self"]
    join(other, session_id)
    hub = get_conference_hub(app)
    selector = hub.engine.rooms.get(room).conference.selector

    # Neither a participant without a case nor a bad payload pins anyone.
    assert refused(other, "screen_share", {"session_id": session_id, "on": True}) == \
        "Only the hub and the session's presenters can share a screen."
    assert refused(presenter, "screen_share", {"session_id": session_id, "on": "yes"})
    assert refused(presenter, "screen_share", {"session_id": session_id})
    assert not [c for c in engine_calls if c[0] == "set_pinned"] and hub.pinned(session_id) is None

    # The case's presenter shares: pinned in the engine, "sharing" in everyone's roster.
    presenter.emit("screen_share", {"session_id": session_id, "on": True})
    roster_where(other, lambda r: person(r, presenter_id)["sharing"])
    assert ("set_pinned", (room, presenter_id)) in engine_calls
    assert selector.pinned == presenter_id
    # Stopping someone else's share (a late "off" from a replaced sharer) changes nothing.
    other.emit("screen_share", {"session_id": session_id, "on": False})
    # A moderator's share replaces it.
    moderator.emit("screen_share", {"session_id": session_id, "on": True})
    roster = roster_where(other, lambda r: person(r, moderator_id)["sharing"])
    assert not person(roster, presenter_id)["sharing"]
    assert hub.pinned(session_id) == moderator_id and selector.pinned == moderator_id
    # Stopping unpins; sharing again and leaving unpins too.
    moderator.emit("screen_share", {"session_id": session_id, "on": False})
    roster_where(other, lambda r: not any(p["sharing"] for p in r["people"]))
    assert engine_calls[-1] == ("set_pinned", (room, None)) and selector.pinned is None
    presenter.emit("screen_share", {"session_id": session_id, "on": True})
    roster_where(other, lambda r: person(r, presenter_id)["sharing"])
    presenter.emit("leave", {"session_id": session_id})
    roster = roster_where(other, lambda r: presenter_id not in {p["id"] for p in r["people"]})
    assert not any(p["sharing"] for p in roster["people"])
    assert hub.pinned(session_id) is None and selector.pinned is None
    assert other.drain("call_error") == []


def test_a_sharer_replaced_by_another_is_told_who_took_over(
        app: Any, live_conference: dict[str, Any], approved_case: Any,
        room_client: Callable[..., RoomClient]) -> None:
    """Their page stops sending its screen and resets its button (room.js) on this event."""
    session_id = live_conference["session"].id
    moderator = room_client(live_conference["specialist"])
    presenter = room_client(live_conference["clinician"])
    other = room_client(live_conference["clinician2"])
    moderator_id = join(moderator, session_id)["self"]
    presenter_id = join(presenter, session_id)["self"]
    join(other, session_id)
    presenter.emit("screen_share", {"session_id": session_id, "on": True})
    roster_where(other, lambda r: person(r, presenter_id)["sharing"])
    moderator.emit("screen_share", {"session_id": session_id, "on": True})
    assert presenter.wait("share_taken_over") == {
        "session_id": session_id, "by": live_conference["specialist"].name}
    roster_where(other, lambda r: person(r, moderator_id)["sharing"])
    assert get_conference_hub(app).pinned(session_id) == moderator_id
    # The replaced page's late "off" changes nothing; sharing again over one's own share
    # and a share that ends on its own (the moderator stops) tell nobody it was taken over.
    presenter.emit("screen_share", {"session_id": session_id, "on": False})
    moderator.emit("screen_share", {"session_id": session_id, "on": True})
    moderator.emit("screen_share", {"session_id": session_id, "on": False})
    roster_where(other, lambda r: not any(p["sharing"] for p in r["people"]))
    for client in (moderator, presenter, other):
        assert client.drain("share_taken_over") == [] and client.drain("call_error") == []


def test_a_sharer_who_drops_or_is_removed_is_unpinned_at_once(
        app: Any, live_conference: dict[str, Any], approved_case: Any,
        engine_calls: list[tuple], room_client: Callable[..., RoomClient]) -> None:
    session_id = live_conference["session"].id
    room = room_id(session_id)
    hub = get_conference_hub(app)
    moderator = room_client(live_conference["specialist"])
    # On a websocket: its end is the socket's closing, which the server always sees (a
    # long-polling client's last "disconnect" may never be sent: then only the ping
    # time-out, ~45 s later, tells the server).
    presenter = room_client(live_conference["clinician"], connect=False)
    presenter.connect("websocket")
    join(moderator, session_id)
    presenter_id = join(presenter, session_id)["self"]
    selector = hub.engine.rooms.get(room).conference.selector
    presenter.emit("screen_share", {"session_id": session_id, "on": True})
    roster_where(moderator, lambda r: has(r, presenter_id, sharing=True))

    # The sharer's socket goes away (a lost network, a closed tab): the pin goes at once,
    # not after the reconnect grace period, and the others see the share end.
    engine_calls.clear()
    presenter.close()
    roster = roster_where(moderator, lambda r: has(r, presenter_id, state="reconnecting"))
    assert not person(roster, presenter_id)["sharing"]
    assert hub.pinned(session_id) is None and selector.pinned is None
    assert ("set_pinned", (room, None)) in engine_calls
    # Their page comes back (a reload): not pinned until it shares again.
    back = room_client(live_conference["clinician"])
    join(back, session_id)
    roster = roster_where(moderator, lambda r: has(r, presenter_id)
                          and not has(r, presenter_id, state="reconnecting"))
    assert not person(roster, presenter_id)["sharing"] and hub.pinned(session_id) is None
    back.emit("screen_share", {"session_id": session_id, "on": True})
    roster_where(moderator, lambda r: has(r, presenter_id, sharing=True))
    # The same page joining again while it shares (a connection restart) stays pinned.
    join(back, session_id)
    roster_where(moderator, lambda r: has(r, presenter_id, sharing=True))
    selector = hub.engine.rooms.get(room).conference.selector
    assert hub.pinned(session_id) == presenter_id and selector.pinned == presenter_id

    # A moderator removes the sharer: unpinned, and the others see the share end.
    moderator.emit("remove", {"session_id": session_id, "participant": presenter_id})
    back.wait("removed")
    roster = roster_where(moderator,
                          lambda r: presenter_id not in {p["id"] for p in r["people"]})
    assert not any(p["sharing"] for p in roster["people"])
    assert hub.pinned(session_id) is None and selector.pinned is None
    assert moderator.drain("call_error") == []


def test_the_share_button_is_for_the_hub_and_the_sessions_presenters(
        live_conference: dict[str, Any], approved_case: Any, room_server: str) -> None:
    session_id = live_conference["session"].id
    for who, shown in (("specialist", True), ("clinician", True), ("clinician2", False)):
        http = requests.Session()
        http.headers["Cookie"] = login_cookie(room_server, live_conference[who])
        page = http.get(f"{room_server}/conferences/sessions/{session_id}/room")
        assert page.status_code == 200
        assert ('id="share-screen"' in page.text) == shown, who
