"""Acceptance 1 of the case conferences (issue 15): twelve aiortc participants in one
conference room of the media engine. Each receives at most N videos and the audio of at
most three speakers, chosen by the server from the audio levels in the RTP packets, and a
participant who starts speaking is seen by everyone else within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from telehealth.video.engine import ConferencePlan
from tests.video.conference_room import (
    ROOM,
    EngineProcess,
    close_all,
    join_all,
    make_peers,
    off_loop,
    speak,
    until,
)
from tests.video.light_peers import QUIET, SPEAKING

LAST_N, SPEAKERS = 4, 3


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineProcess]:
    """The media engine in a process of its own, for this module's tests."""
    process = EngineProcess()
    yield process
    process.close()


def test_twelve_participants_see_the_speaker_within_a_second(engine: EngineProcess) -> None:
    # Light clients (10 frames a second, 60 ms audio packets): a loaded machine must still
    # carry twelve, and the engine process.
    peers = make_peers(12, fps=10, audio_ms=60)
    by_id = {peer.pid: peer for peer in peers}
    # Speakers who were in nobody's last-N: each switch is a real change of picture.
    speakers = [by_id[pid] for pid in ("p6", "p8", "p10", "p7", "p9", "p11")]

    async def scenario() -> None:
        try:
            await join_all(engine, peers, plan=ConferencePlan(last_n=LAST_N,
                                                              audio_speakers=SPEAKERS))
            # Before anyone speaks, the video lanes show the first to join.
            await until(lambda: all(len(p.hearing("video", 0.5)) == LAST_N for p in peers),
                        timeout=30)
            for peer in peers:
                kinds = list(peer.receiving.values())
                assert kinds.count("video") == LAST_N and kinds.count("audio") == SPEAKERS

            latencies, previous, began = [], [], time.monotonic()
            for speaker in speakers:
                others = [p for p in peers if p is not speaker]
                latencies.append(await speak(speaker, others, previous))
                started = time.monotonic()
                # Their voice reaches everyone too, and their picture stays.
                await until(lambda s=speaker, t=started, o=others: all(  # type: ignore[misc]
                    p.last_heard["audio"].get(s.pid, 0) > t for p in o), timeout=3)
                layouts = await off_loop(engine.layouts, ROOM)
                for peer in peers:
                    layout = layouts[peer.pid]
                    videos = [pid for pid, mids in layout.items() if mids["video"]]
                    audios = [pid for pid, mids in layout.items() if mids["audio"]]
                    assert peer.pid not in layout
                    assert len(videos) <= LAST_N and len(audios) <= SPEAKERS
                    if peer is not speaker:
                        assert videos[0] == speaker.pid  # the active speaker comes first
                        assert speaker.pid in audios
                assert await off_loop(engine.active_speaker, ROOM) == speaker.pid
                previous = [speaker]
            print("switch latencies (s):", [round(x, 3) for x in latencies])
            assert max(latencies) <= 1.0, latencies

            # Nobody got anything re-encoded, nor the voice of anyone who never spoke, and
            # every change of plan was told to the pages.
            spoke = {s.pid for s in speakers}
            for peer in peers:
                assert peer.unknown_frames == 0
                assert set(peer.last_heard["audio"]) <= spoke, peer.last_heard["audio"]
            changes = await off_loop(engine.changes)
            assert len([at for at in changes if at >= began]) >= len(speakers)
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())
    assert engine.stats() == {"rooms": 0, "peer_connections": 0}


def test_levels_under_the_speech_threshold_change_nothing(engine: EngineProcess) -> None:
    """Background noise in every room: nobody becomes the speaker, nobody is heard."""
    peers = make_peers(4, prefix="q", fps=10, audio_ms=60)

    async def scenario() -> None:
        try:
            await join_all(engine, peers, plan=ConferencePlan(last_n=2, audio_speakers=2))
            await until(lambda: all(len(p.hearing("video", 0.5)) == 2 for p in peers))
            for peer in peers:
                peer.level = QUIET
            await asyncio.sleep(1.0)
            assert await off_loop(engine.active_speaker, ROOM) is None
            assert all(not p.last_heard["audio"] for p in peers)
            peers[3].level = SPEAKING
            await until(lambda: all(peers[3].pid in p.hearing("audio", 0.2)
                                    for p in peers[:3]), timeout=3)
        finally:
            await close_all(engine, peers)

    asyncio.run(scenario())
