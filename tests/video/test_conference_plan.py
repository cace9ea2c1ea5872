"""The conference room's media plan in the engine: lanes at join, plan changes told to the
page, a moderator's mute, and `low` or audio-only receivers (issue 15)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from telehealth.video.engine import AUDIO_HOLD, VIDEO_PAUSE_AFTER, ConferencePlan, RoomFull
from telehealth.video.profiles import conference_video_bps, get_profile
from telehealth.video.tracks import Feed, ReceiverTap, SlotTrack
from tests.video.conference_room import (
    EngineProcess,
    close_all,
    join_all,
    make_peers,
    off_loop,
    until,
)
from tests.video.light_peers import QUIET, SPEAKING, LightPeer

LOW = get_profile("low")


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    """The media engine in a process of its own, for this module's tests."""
    process = EngineProcess()
    yield process
    process.close()


def light(count: int, prefix: str) -> list[LightPeer]:
    return make_peers(count, prefix=prefix, fps=10, audio_ms=60)


def media_lines(sdp: str) -> list[tuple[str, str]]:
    """(kind, direction) of each media section of an SDP."""
    out = []
    for section in sdp.split("\r\nm=")[1:]:
        direction = next(line[2:] for line in section.split("\r\n")
                         if line in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"))
        out.append((section.split()[0], direction))
    return out


def opus_fmtp(sdp: str) -> str:
    """The Opus fmtp line of the first audio section (what the participant sends)."""
    section = next(s for s in sdp.split("\r\nm=")[1:] if s.startswith("audio"))
    lines = section.split("\r\n")
    pt = next(line.split()[0].split(":")[1] for line in lines
              if line.startswith("a=rtpmap:") and " opus/" in line.lower())
    return next(line for line in lines if line.startswith(f"a=fmtp:{pt} "))


def test_a_conference_connection_has_lanes_not_a_slot_per_participant(
        engine: EngineProcess) -> None:
    engine.open_conference("conf-lanes", ConferencePlan(last_n=2, audio_speakers=3,
                                                        max_participants=3))
    try:
        offers = [engine.join("conf-lanes", f"l{n}", LOW) for n in range(3)]
        for sdp in offers:
            lines = media_lines(sdp)
            assert lines[:2] == [("audio", "recvonly"), ("video", "recvonly")]
            assert sorted(lines[2:]) == [("audio", "sendonly")] * 3 + [("video", "sendonly")] * 2
            # Room in a 256 kbps link for the video of one and the voices of three.
            assert f"b=TIAS:{conference_video_bps(LOW, 3)}" in sdp
            # Opus DTX: a silent participant sends a packet every 400 ms, not 50 a second.
            assert ";usedtx=1" in opus_fmtp(sdp)
        with pytest.raises(RoomFull):
            engine.join("conf-lanes", "l3", LOW)
    finally:
        for n in range(3):
            engine.leave("conf-lanes", f"l{n}")
        engine.close_conference("conf-lanes")
    # A consult call is what it was: three audio+video slots, one per other participant,
    # and no DTX asked.
    consult = engine.join("consult-1", "a", LOW)
    lines = media_lines(consult)
    assert lines[2:].count(("video", "sendonly")) == 3
    assert "usedtx" not in consult
    engine.leave("consult-1", "a")
    with pytest.raises(ValueError):
        ConferencePlan(last_n=0)


def test_plan_changes_follow_the_speakers_and_are_told_to_the_page(
        engine: EngineProcess) -> None:
    peers = light(5, "c")
    c0, c1, c2, c3, c4 = peers

    def videos(layouts: dict, pid: str) -> list[str]:
        return [holder for holder, mids in layouts[pid].items() if mids["video"]]

    def audios(layouts: dict, pid: str) -> list[str]:
        return [holder for holder, mids in layouts[pid].items() if mids["audio"]]

    async def scenario() -> None:
        try:
            await join_all(engine, peers, plan=ConferencePlan(last_n=2, audio_speakers=2))
            await until(lambda: all(len(p.hearing("video", 0.5)) == 2 for p in peers))
            began = time.monotonic()
            c3.level = SPEAKING
            await until(lambda: all(videos(engine.layouts("conf-test"), p.pid)[:1] == ["c3"]
                                    for p in peers if p is not c3), timeout=5)
            assert any(at > began for at in engine.changes())
            layouts = engine.layouts("conf-test")
            assert videos(layouts, "c3") == ["c0", "c1"]  # never themselves
            assert all(audios(layouts, p.pid) == ["c3"] for p in peers if p is not c3)

            # c4 takes over: c3 stays on screen as the previous speaker, and their voice
            # goes once they have been quiet a while.
            c3.level, c4.level = QUIET, SPEAKING
            await until(lambda: all(videos(engine.layouts("conf-test"), p.pid) == ["c4", "c3"]
                                    for p in (c0, c1, c2)), timeout=5)
            assert videos(engine.layouts("conf-test"), "c4") == ["c3", "c0"]
            await asyncio.sleep(AUDIO_HOLD + 0.3)
            layouts = engine.layouts("conf-test")
            assert all(audios(layouts, p.pid) == ["c4"] for p in (c0, c1, c2, c3))
            assert all("c3" not in p.hearing("audio", 0.3) for p in (c0, c1, c2, c4))
            assert all(p.unknown_frames == 0 for p in peers)

            # Someone leaves: their lanes go to the next in line.
            await peers[4].close()
            await off_loop(engine.leave, "conf-test", "c4")
            layouts = engine.layouts("conf-test")
            assert all(videos(layouts, p.pid) == ["c3", "c0"] for p in (c1, c2))
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())


def test_a_muted_participant_is_neither_forwarded_nor_ranked(engine: EngineProcess) -> None:
    peers = light(4, "m")
    m0, m1, m2, m3 = peers

    async def scenario() -> None:
        try:
            await join_all(engine, peers, plan=ConferencePlan(last_n=2, audio_speakers=2))
            m1.level = SPEAKING
            await until(lambda: all("m1" in p.hearing("audio", 0.3) for p in (m0, m2, m3)),
                        timeout=5)
            await off_loop(engine.set_muted, "conf-test", "m1", True)
            await asyncio.sleep(0.5)  # what was already on its way
            assert all("m1" not in p.hearing("audio", 0.3) for p in (m0, m2, m3))
            layouts = engine.layouts("conf-test")
            assert all(not layouts[p.pid].get("m1", {}).get("audio") for p in (m0, m2, m3))

            # Still shouting, m1 no longer holds the floor: a quieter voice takes it.
            m2.level = 40
            await until(lambda: engine.active_speaker("conf-test") == "m2", timeout=5)
            await until(lambda: all("m2" in p.hearing("audio", 0.3) for p in (m0, m1, m3)))
            assert all("m1" not in p.hearing("audio", 0.3) for p in (m0, m2, m3))

            await off_loop(engine.set_muted, "conf-test", "m1", False)
            await until(lambda: all("m1" in p.hearing("audio", 0.3) for p in (m0, m2, m3)),
                        timeout=5)
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())


def test_mute_stops_a_feed_in_a_consult_call_too() -> None:
    """Outside conferences, set_muted silences the participant's feed for every slot."""
    feed = Feed("audio", "consult-1/a/audio", receiver=None, tap=ReceiverTap())
    slot = SlotTrack("audio", LOW)
    feed.attach(slot)
    codec = SimpleNamespace(name="opus", clockRate=48_000)
    frame = SimpleNamespace(data=b"\x78" * 40, timestamp=960)
    feed.on_encoded(codec, frame)
    assert len(slot._queue) == 1
    feed.muted = True
    feed.on_encoded(codec, frame)
    assert len(slot._queue) == 1
    feed.muted = False
    feed.on_encoded(codec, frame)
    assert len(slot._queue) == 2


def test_a_low_receiver_gets_the_active_speaker_only_or_no_video(
        engine: EngineProcess) -> None:
    peers = light(4, "w")
    w0, w1, w2, w3 = peers

    def videos(pid: str) -> list[str]:
        return [h for h, mids in engine.layouts("conf-test")[pid].items() if mids["video"]]

    async def scenario() -> None:
        try:
            await join_all(engine, peers[1:], plan=ConferencePlan(last_n=3, audio_speakers=2))
            await join_all(engine, [w0], profile="low")
            w2.level = SPEAKING
            await until(lambda: videos("w0") == ["w2"] and videos("w1") == ["w2", "w3", "w0"],
                        timeout=5)
            await asyncio.sleep(0.5)
            assert w0.hearing("video", 0.3) == {"w2"}
            w2.level, w3.level = QUIET, SPEAKING
            await until(lambda: videos("w0") == ["w3"], timeout=5)
            await until(lambda: w0.hearing("video", 0.3) == {"w3"})

            # Video off: no lane carries video to w0; the voices go on.
            await off_loop(engine.set_receive_video, "conf-test", "w0", False)
            assert videos("w0") == []
            await asyncio.sleep(0.5)
            assert w0.hearing("video", 0.3) == set()
            assert "w3" in w0.hearing("audio", 0.3)
            await off_loop(engine.set_receive_video, "conf-test", "w0", True)
            await until(lambda: w0.hearing("video", 0.3) == {"w3"}, timeout=5)
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())


def test_a_long_unwatched_participant_pauses_its_video_and_resumes_when_it_speaks(
        engine: EngineProcess) -> None:
    """Nobody is shown e2's and e3's video: after VIDEO_PAUSE_AFTER they are asked to stop
    sending it (and do), and their silent audio is DTX comfort noise. When e3 speaks it is
    asked to resume before it takes the floor, and everyone sees it within a second; e1,
    no longer shown, is asked to pause only after VIDEO_PAUSE_AFTER."""
    peers = light(4, "e")
    e0, e1, e2, e3 = peers

    def asks(pid: str) -> list[tuple[float, bool]]:
        return [(at, wanted) for at, room, who, wanted in engine.video_asks
                if room == "conf-test" and who == pid]

    async def scenario() -> None:
        try:
            began = time.monotonic()
            # Last-N 1: e0 sees e1, everyone else sees e0 (joining order, before speech).
            await join_all(engine, peers, plan=ConferencePlan(last_n=1, audio_speakers=2))
            await until(lambda: all(len(p.hearing("video", 0.5)) == 1 for p in peers),
                        timeout=10)
            assert all(p.dtx for p in peers)
            await until(lambda: not e2.video_wanted and not e3.video_wanted,
                        timeout=VIDEO_PAUSE_AFTER + 5)
            assert asks("e2")[0][1] is False
            assert asks("e2")[0][0] - began >= VIDEO_PAUSE_AFTER
            assert asks("e0") == [] and asks("e1") == []  # watched: never paused
            await asyncio.sleep(0.3)  # what was on its way
            video, audio = e2.tracks[1].sent, e2.tracks[0].sent
            await asyncio.sleep(2.0)
            assert e2.tracks[1].sent == video  # no video at all
            # DTX: a comfort-noise frame about every 400 ms instead of 16 a second (60 ms).
            assert 3 <= e2.tracks[0].sent - audio <= 7

            # e3 speaks: asked to resume at once, seen by everyone within a second.
            e3.level = SPEAKING
            spoke = time.monotonic()
            arrivals = [p.video_from("e3", spoke) for p in (e0, e1, e2)]
            seen = await asyncio.wait_for(asyncio.gather(*arrivals), 5)
            assert max(seen) - spoke <= 1.0, max(seen) - spoke
            resumed = [at for at, wanted in asks("e3") if wanted]
            assert resumed and resumed[0] <= min(seen)
            assert await off_loop(engine.active_speaker, "conf-test") == "e3"
            assert e3.video_wanted and not e2.video_wanted

            # e1 is no longer shown (e0 now sees e3): paused, but not before the delay.
            await until(lambda: not e1.video_wanted, timeout=VIDEO_PAUSE_AFTER + 5)
            paused_at = asks("e1")[0][0]
            assert paused_at - spoke >= VIDEO_PAUSE_AFTER - 0.1
            assert all(p.unknown_frames == 0 for p in peers)
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())


def test_a_pinned_screen_is_seen_first_by_everyone_and_never_paused(
        engine: EngineProcess) -> None:
    """A presenter shares a screen without speaking (the room pins them): every receiver's
    first video lane carries them (a `low` receiver's only one), they are asked to resume
    if paused and never asked to pause while pinned; unpinned, last-N comes back."""
    peers = light(4, "s")
    s0, s1, s2, s3 = peers

    def videos(pid: str) -> list[str]:
        return [h for h, mids in engine.layouts("conf-test")[pid].items() if mids["video"]]

    def asks(pid: str) -> list[tuple[float, bool]]:
        return [(at, wanted) for at, room, who, wanted in engine.video_asks
                if room == "conf-test" and who == pid]

    async def scenario() -> None:
        try:
            await join_all(engine, peers[1:], plan=ConferencePlan(last_n=1, audio_speakers=2))
            await join_all(engine, [s0], profile="low")
            s1.level = SPEAKING
            # Last-N 1: s1 sees s2 (the roster's next), everyone else s1; s3 is unwatched.
            await until(lambda: videos("s0") == ["s1"] and videos("s2") == ["s1"],
                        timeout=5)
            await until(lambda: not s3.video_wanted, timeout=VIDEO_PAUSE_AFTER + 5)

            await off_loop(engine.set_pinned, "conf-test", "s3")
            pinned_at = time.monotonic()
            await until(lambda: all(videos(p) == ["s3"] for p in ("s0", "s1", "s2")),
                        timeout=5)
            assert videos("s3") == ["s1"]  # never their own screen back
            seen = await asyncio.wait_for(asyncio.gather(
                *(p.video_from("s3", pinned_at) for p in (s0, s1, s2))), 5)
            assert max(seen) - pinned_at <= 2.0, max(seen) - pinned_at
            assert s3.video_wanted and asks("s3")[-1][1] is True
            # Silent all along, still shown and never asked to pause while pinned.
            await asyncio.sleep(VIDEO_PAUSE_AFTER + 0.5)
            assert s3.video_wanted and asks("s3")[-1][1] is True
            assert s0.hearing("video", 0.3) == {"s3"}

            await off_loop(engine.set_pinned, "conf-test", None)
            await until(lambda: videos("s0") == ["s1"] and videos("s2") == ["s1"],
                        timeout=5)
            await until(lambda: not s3.video_wanted, timeout=VIDEO_PAUSE_AFTER + 5)
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())
