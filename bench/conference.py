"""Conference room benchmark (issue 15, acceptance 6): a 30-participant session at `low`.

    .venv/bin/python bench/conference.py [--participants 30] [--switches 10] [--hold 2.5]
    BENCH_PROFILE=1 .venv/bin/python bench/conference.py   # also: 15 s of cProfile of the
                                                           # engine's loop after measuring

The media engine runs in a child process (as beside the web app), so its CPU is measured
apart from the clients. Clients are light aiortc peers (tests/video/light_peers.py): they
send media encoded once (320x240 VP8 at 15 fps within the conference's video cap, Opus in
20 ms packets at 16 kbps, an RFC 6464 audio level in every packet, as a browser does) and
name what they receive by its bytes, without decoding.

In the same run, the baseline: a 2-party consult call of two such clients on the same
engine, whose four forwarded tracks give the per-track cost of today's calls.

Prints: server CPU per forwarded track, forwarded tracks per core, each receiver's downlink
(min / median / max, RTP/RTCP datagrams plus UDP/IP headers), and the time for a new active
speaker's video to reach every receiver (p50 / p95 over the switches). The clients behave as
Chrome does where the server asks (light_peers.py): Opus DTX in silence because the offer
says usedtx=1, and no video while the engine says nobody is shown it (on_video_wanted), so
frames sent per second are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py would shadow the standard library's http: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from telehealth.video.engine import ConferencePlan  # noqa: E402
from telehealth.video.profiles import conference_video_bps, get_profile  # noqa: E402
from tests.video.conference_room import (  # noqa: E402
    EngineProcess,
    join,
    off_loop,
    speak,
    until,
)
from tests.video.light_peers import LightPeer, record  # noqa: E402

LOW = get_profile("low")
ROOM, CONSULT = "conf-bench", "consult-bench"
UDP_IP_HEADER_BYTES = 28
TARGET_TRACKS_PER_CORE, TARGET_DOWNLINK_KBPS, TARGET_SWITCH_P95 = 250, 256, 1.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def peers(prefix: str, count: int) -> list[LightPeer]:
    """Light peers sending what a `low` browser sends in a conference."""
    video_bps = conference_video_bps(LOW, 3)
    return [LightPeer(f"{prefix}{n}", record(f"{prefix}{n}", 24 + n * 200 // count, 320, 240,
                                             fps=15, video_bps=video_bps))
            for n in range(count)]


async def transport_bytes(peer: LightPeer) -> tuple[int, int]:
    """(bytes on the wire, datagrams) the peer received so far."""
    assert peer.pc is not None
    stats = await peer.pc.getStats()
    transport = next(s for s in stats.values() if s.type == "transport")
    return (transport.bytesReceived + UDP_IP_HEADER_BYTES * transport.packetsReceived,
            transport.packetsReceived)


class Meter:
    """The engine process's CPU and the tracks it forwards, over a span of time."""

    def __init__(self, engine: EngineProcess) -> None:
        self.engine = engine
        self.process = psutil.Process(engine.process.pid)
        self.samples: list[int] = []

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    async def run(self, seconds: float) -> tuple[float, float]:
        """(cores used, forwarded tracks on average) over the next `seconds`."""
        started, cpu = time.monotonic(), self.cpu()
        samples = []
        while time.monotonic() - started < seconds:
            counts = await off_loop(self.engine.forwarding)
            samples.append(counts["audio"] + counts["video"])
            await asyncio.sleep(0.5)
        cores = (self.cpu() - cpu) / (time.monotonic() - started)
        return cores, statistics.mean(samples)


async def baseline(engine: EngineProcess, seconds: float) -> dict[str, float]:
    """A 2-party consult call: CPU per forwarded track."""
    pair = peers("b", 2)
    try:
        for peer in pair:
            await join(engine, peer, "low", CONSULT)
        await until(lambda: all(p.hearing("video", 0.5) for p in pair), timeout=30)
        await asyncio.sleep(2)  # past the first keyframes and the sources' measuring
        cores, tracks = await Meter(engine).run(seconds)
        return {"cores": cores, "tracks": tracks, "per_track": cores / tracks}
    finally:
        for peer in pair:
            await peer.close()
            await off_loop(engine.leave, CONSULT, peer.pid)


async def conference(engine: EngineProcess, count: int, switches: int,
                     hold: float) -> dict[str, Any]:
    people = peers("c", count)
    await off_loop(engine.open_conference, ROOM, ConferencePlan(last_n=4, audio_speakers=3))
    try:
        for peer in people:
            await join(engine, peer, "low", ROOM)
        await until(lambda: all(p.hearing("video", 0.5) for p in people), timeout=60)
        await asyncio.sleep(2)
        meter = Meter(engine)
        bytes_before = [await transport_bytes(p) for p in people]
        me = psutil.Process()
        sent_before = [sum(p.tracks[k].sent for p in people) for k in (0, 1)]
        started, cpu, client_cpu = time.monotonic(), meter.cpu(), sum(me.cpu_times()[:2])
        samples: list[int] = []
        reencoding: list[int] = []
        latencies: list[float] = []
        previous: list[LightPeer] = []
        # Speakers take turns; each is someone nobody was watching.
        from_paused = 0
        for n in range(switches):
            speaker = people[(n * 7 + 3) % count]
            others = [p for p in people if p is not speaker]
            from_paused += not speaker.video_wanted  # its page had stopped sending video
            try:
                latencies.append(await speak(speaker, others, previous, timeout=10))
            except TimeoutError:  # counted as a miss, and said why
                latencies.append(float("inf"))
                missing = [p for p in others
                           if time.monotonic() - p.last_heard["video"].get(speaker.pid, 0) > 1]
                print(f"  {speaker.pid} not seen within 10 s by {len(missing)} receivers, "
                      f"e.g. {missing[0].pid}: sees {missing[0].hearing('video', 1)}, "
                      f"{missing[0].unknown_frames} frames unnamed; active speaker "
                      f"{await off_loop(engine.active_speaker, ROOM)}; still in the room: "
                      f"{speaker.pid in await off_loop(engine.participants, ROOM)} (client "
                      f"connection {speaker.pc.connectionState if speaker.pc else None})")
            previous = [speaker]
            until_next = time.monotonic() + hold
            while time.monotonic() < until_next:
                counts = await off_loop(engine.forwarding)
                samples.append(counts["audio"] + counts["video"])
                reencoding.append(counts["reencoding"])
                await asyncio.sleep(0.5)
        seconds = time.monotonic() - started
        cores = (meter.cpu() - cpu) / seconds
        sent = [(sum(p.tracks[k].sent for p in people) - sent_before[k]) / seconds
                for k in (0, 1)]
        client_cores = (sum(me.cpu_times()[:2]) - client_cpu) / seconds
        bytes_after = [await transport_bytes(p) for p in people]
        if os.environ.get("BENCH_PROFILE"):  # where the engine's loop spends its time
            print(await off_loop(engine.profile, 15.0))
        downlink = [(after[0] - before[0]) * 8 / seconds / 1000
                    for before, after in zip(bytes_before, bytes_after, strict=True)]
        tracks = statistics.mean(samples)
        unknown = sum(p.unknown_frames for p in people)
        return {"cores": cores, "tracks": tracks, "per_track": cores / tracks,
                "downlink": downlink, "latencies": latencies, "seconds": seconds,
                "unknown": unknown, "client_cores": client_cores,
                "reencoding": max(reencoding), "sent": sent, "from_paused": from_paused,
                "dtx": all(p.dtx for p in people)}
    finally:
        for peer in people:
            await peer.close()
        for peer in people:
            await off_loop(engine.leave, ROOM, peer.pid)
        await off_loop(engine.close_conference, ROOM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--hold", type=float, default=2.5,
                        help="seconds each speaker holds the floor after being seen")
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()

    load_before = os.getloadavg()
    engine = EngineProcess()
    try:
        base = asyncio.run(baseline(engine, args.baseline_seconds))
        conf = asyncio.run(conference(engine, args.participants, args.switches, args.hold))
    finally:
        engine.close()
    load_after = os.getloadavg()

    per_track_ms = conf["per_track"] * 1000  # CPU ms per second, per track
    tracks_per_core = 1 / conf["per_track"]
    down = conf["downlink"]
    p50, p95 = percentile(conf["latencies"], 0.5), percentile(conf["latencies"], 0.95)
    ok = {True: "ok", False: "MISSED"}
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    print(f"baseline, 2-party consult call at low: {base['tracks']:.0f} forwarded tracks, "
          f"{base['cores'] * 100:.1f}% of a core, {base['per_track'] * 1000:.2f} ms CPU/s "
          "per track")
    print(f"conference, {args.participants} participants at low (last-N 4, 3 speakers), "
          f"{conf['seconds']:.0f} s, {args.switches} speaker switches:")
    print(f"  forwarded tracks (mean): {conf['tracks']:.1f}; server CPU "
          f"{conf['cores'] * 100:.1f}% of a core")
    print(f"  frames the clients sent the server: {conf['sent'][0]:.0f} audio/s "
          f"(Opus DTX asked: {conf['dtx']}), {conf['sent'][1]:.0f} video/s; "
          f"{conf['from_paused']} of {args.switches} new speakers' video was paused")
    print(f"  server CPU per forwarded track: {per_track_ms:.2f} ms CPU/s "
          f"({conf['per_track'] / base['per_track']:.2f}x the consult call's)")
    print(f"  forwarded tracks per core: {tracks_per_core:.0f} "
          f"(target >= {TARGET_TRACKS_PER_CORE}: {ok[tracks_per_core >= TARGET_TRACKS_PER_CORE]})")
    print(f"  receiver downlink kbps: min {min(down):.0f} / median {statistics.median(down):.0f}"
          f" / max {max(down):.0f} (target <= {TARGET_DOWNLINK_KBPS}: "
          f"{ok[max(down) <= TARGET_DOWNLINK_KBPS]})")
    print(f"  new speaker's video at every receiver: p50 {p50:.2f} s / p95 {p95:.2f} s / "
          f"max {max(conf['latencies']):.2f} s (target p95 <= {TARGET_SWITCH_P95}: "
          f"{ok[p95 <= TARGET_SWITCH_P95]})")
    print(f"  frames received that nobody sent as such (re-encoded or damaged): "
          f"{conf['unknown']}; lanes re-encoding at most {conf['reencoding']}; the clients "
          f"used {conf['client_cores'] * 100:.0f}% of a core")


if __name__ == "__main__":
    main()
