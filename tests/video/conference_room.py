"""A conference room of the media engine, joined by light peers (see light_peers.py).

The engine runs in a child process of its own (`EngineProcess`), as it does beside the web
app's threads in production: on a small loaded machine a dozen clients and the server
sharing one interpreter lock would measure the lock, not the server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from telehealth.video.engine import ConferencePlan, VideoEngine
from telehealth.video.profiles import get_profile
from telehealth.video.tracks import SlotTrack
from tests.video.light_peers import QUIET, SPEAKING, LightPeer, record

ROOM = "conf-test"


class RoomEvents:
    """Engine callbacks of the conference rooms, kept for the test to read."""

    def __init__(self, events: Any = None) -> None:
        self.lock = threading.Lock()
        self.changes: list[float] = []  # when on_room_changed came (monotonic)
        self.states: list[tuple[str, str]] = []
        self.events = events  # a pipe to the test process (see EngineProcess.peers)

    def on_connection_state(self, room_id: str, participant_id: str, state: str) -> None:
        with self.lock:
            self.states.append((participant_id, state))

    def on_room_changed(self, room_id: str) -> None:
        with self.lock:
            self.changes.append(time.monotonic())

    def on_send_limit(self, room_id: str, participant_id: str, profile: str) -> None:
        pass

    def on_video_wanted(self, room_id: str, participant_id: str, wanted: bool) -> None:
        # To the test process at once, as the hub's `send_video` goes to the page.
        if self.events is not None:
            with self.lock:
                self.events.send(("video_wanted", room_id, participant_id, wanted))


def _forwarding(engine: VideoEngine) -> dict[str, int]:
    """Send tracks forwarding someone's media now (their source sent within the last
    second), per kind, over every room; and how many conference lanes re-encode."""
    async def count() -> dict[str, int]:
        now = time.monotonic()

        def flowing(track: SlotTrack) -> bool:
            source = track.source
            return source is not None and not track.paused and bool(source._window) \
                and now - source._window[-1][0] < 1.0

        out = {"audio": 0, "video": 0, "reencoding": 0}
        for room in engine.rooms.all():
            for participant in room.participants.values():
                tracks = [lane.track for lane in participant.lanes] + \
                    [t for slot in participant.slots for t in (slot.audio_track,
                                                              slot.video_track)]
                for track in tracks:
                    if flowing(track):
                        out[track.kind] += 1
                        out["reencoding"] += track.transcoding and bool(participant.lanes)
        return out

    return engine.run(count())


def _profile(engine: VideoEngine, seconds: float, top: int = 40) -> str:
    """Where the media loop's thread spends its time (cProfile, by own time)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()

    async def sample() -> None:
        profiler.enable()  # in the loop's thread: it profiles that thread only
        await asyncio.sleep(seconds)
        profiler.disable()

    loop = engine._loop  # engine.run() would time out on a long sample
    assert loop is not None
    asyncio.run_coroutine_threadsafe(sample(), loop).result(seconds + 30)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("telehealth", top // 2)  # our share
    return out.getvalue()


def _serve(conn: Any, pushed: Any) -> None:
    """Child process: one engine, its conference callbacks recorded, driven by messages;
    what the hub would tell a page goes back at once on `pushed`."""
    events = RoomEvents(pushed)
    engine = VideoEngine()
    engine.route("conf-", events)
    engine.start()
    conn.send("ready")
    while True:
        name, args = conn.recv()
        try:
            if name == "changes":
                with events.lock:
                    result: Any = list(events.changes)
            elif name == "cpu_seconds":
                times = os.times()
                result = times.user + times.system
            elif name == "forwarding":
                result = _forwarding(engine)
            elif name == "profile":  # cProfile of the media loop's thread for `seconds`
                result = _profile(engine, *args)
            else:
                result = getattr(engine, name)(*args)
        except Exception as exc:
            conn.send((False, exc))
        else:
            conn.send((True, result))
        if name == "shutdown":
            return


class EngineProcess:
    """A VideoEngine in a child process, called with the engine's own method names
    (`join`, `answer`, `layouts`, `set_muted`, ...) plus `changes`, `cpu_seconds` and
    `forwarding`.

    The engine's `on_video_wanted` reaches the light peer it names (registered in `peers`
    by `join`) on that peer's loop, as the conference hub's `send_video` reaches a page."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._pushed, pushed = context.Pipe(duplex=False)
        self.process = context.Process(target=_serve, args=(child, pushed), daemon=True)
        self.process.start()
        self._lock = threading.Lock()
        # (room, participant id) -> (the peer's loop, the peer)
        self.peers: dict[tuple[str, str], tuple[asyncio.AbstractEventLoop, LightPeer]] = {}
        self.video_asks: list[tuple[float, str, str, bool]] = []  # (at, room, pid, wanted)
        if not self._conn.poll(60):
            raise RuntimeError("the engine process did not start")
        assert self._conn.recv() == "ready"
        threading.Thread(target=self._relay, daemon=True, name="engine-events").start()

    def _relay(self) -> None:
        while True:
            try:
                _name, room, pid, wanted = self._pushed.recv()
            except (EOFError, OSError):
                return
            self.video_asks.append((time.monotonic(), room, pid, wanted))
            target = self.peers.get((room, pid))
            if target is not None:
                loop, peer = target
                try:
                    loop.call_soon_threadsafe(peer.set_video_wanted, wanted)
                except RuntimeError:  # that peer's loop is gone
                    pass

    def call(self, name: str, *args: Any) -> Any:
        with self._lock:
            self._conn.send((name, args))
            ok, result = self._conn.recv()
        if not ok:
            raise result
        return result

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.call(name, *args)

    def close(self) -> None:
        if self.process.is_alive():
            self.call("shutdown")
        self.process.join(30)


async def off_loop(func: Callable[..., Any], *args: Any) -> Any:
    """Call a blocking engine method without blocking the peers' loop."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def join(engine: Any, peer: LightPeer, profile: str = "standard",
               room: str = ROOM) -> None:
    if isinstance(engine, EngineProcess):
        engine.peers[(room, peer.pid)] = (asyncio.get_running_loop(), peer)
    offer = await off_loop(engine.join, room, peer.pid, get_profile(profile))
    answer = await peer.answer(offer)
    await off_loop(engine.answer, room, peer.pid, answer)


def make_peers(count: int, prefix: str = "p", **recording: Any) -> list[LightPeer]:
    """`count` peers p0, p1, ... each in its own shade of grey."""
    return [LightPeer(f"{prefix}{n}", record(f"{prefix}{n}", 24 + n * 200 // count,
                                             **recording))
            for n in range(count)]


async def join_all(engine: Any, peers: list[LightPeer], profile: str = "standard",
                   plan: ConferencePlan | None = None, room: str = ROOM) -> None:
    """Open the conference and join every peer, in order."""
    await off_loop(engine.open_conference, room, plan or ConferencePlan())
    for peer in peers:
        await join(engine, peer, profile, room)


async def until(check: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> float:
    """Wait until `check()` holds; returns when it did (monotonic), or fails."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic()


async def speak(speaker: LightPeer, others: list[LightPeer], quiet: list[LightPeer],
                timeout: float = 5.0) -> float:
    """`speaker` starts speaking (the `quiet` stop): seconds until every one of `others`
    receives the speaker's video."""
    for peer in quiet:
        peer.level = QUIET
    started = time.monotonic()
    speaker.level = SPEAKING
    arrivals = [peer.video_from(speaker.pid, started) for peer in others]
    done = await asyncio.wait_for(asyncio.gather(*arrivals), timeout)
    return max(done) - started


async def close_all(engine: Any, peers: list[LightPeer], room: str = ROOM) -> None:
    for peer in peers:
        await peer.close()
    for peer in peers:
        await off_loop(engine.leave, room, peer.pid)
    await off_loop(engine.close_conference, room)
