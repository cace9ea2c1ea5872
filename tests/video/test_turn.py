"""A call through a real coturn with the client's ICE policy set to relay only."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import need_service
from tests.video.conftest import SignalClient
from tests.video.peers import CallPeer
from tests.video.test_call import until

TURNSERVER = "/usr/bin/turnserver"
SECRET = "video-test-secret"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@pytest.fixture()
def turn_server(tmp_path: Path) -> Iterator[str]:
    """coturn on 127.0.0.1 with use-auth-secret; yields its turn: URL."""
    if not shutil.which(TURNSERVER):
        need_service("coturn", f"{TURNSERVER} is not installed")
    port = free_port()
    log = tmp_path / "turn.log"
    process = subprocess.Popen(
        [TURNSERVER, "-n", "--no-cli", "--no-tls", "--no-dtls",
         "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
         "--listening-port", str(port), "--use-auth-secret", "--static-auth-secret", SECRET,
         "--realm", "telehealth.test", "--allow-loopback-peers", "--no-multicast-peers",
         "--db", str(tmp_path / "turn.sqlite"), "--pidfile", str(tmp_path / "turn.pid"),
         "--log-file", str(log), "--simple-log", "--verbose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "UDP listener opened on" not in (log.read_text() if log.exists() else ""):
            if process.poll() is not None or time.monotonic() > deadline:
                need_service("coturn", f"turnserver did not start: {log.read_text()[-500:]}"
                             if log.exists() else "turnserver did not start")
            time.sleep(0.05)
        yield f"turn:127.0.0.1:{port}?transport=udp"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_relay_only_call_flows_through_coturn(
        app: Flask, turn_server: str, call_consult: Any, world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch, signal_client: Callable[..., SignalClient]) -> None:
    monkeypatch.setitem(app.config, "VIDEO_TURN_URLS", turn_server)
    monkeypatch.setitem(app.config, "VIDEO_TURN_SECRET", SECRET)
    signals = [signal_client(world["clinician"]), signal_client(world["specialist"])]

    async def scenario() -> None:
        peers = [CallPeer(signals[0], "red", relay_only=True),
                 CallPeer(signals[1], "blue", relay_only=True)]
        try:
            for peer in peers:
                await peer.join(call_consult.id)
            # The browser (here: aiortc) got short-lived per-user TURN credentials.
            turn = next(s for s in peers[0].offer["ice_servers"] if s.get("username"))
            assert turn["username"].endswith(f":u{world['clinician'].id}")
            layouts = [await s.await_event("peers", where=lambda d: d["peers"] and
                                           d["peers"][0]["video_mid"]) for s in signals]
            await until(lambda: all(
                peers[i].colours_from(layouts[i], peers[1 - i].participant_id)
                .get(("blue", "red")[i], 0) >= 3 for i in (0, 1)), timeout=20)
            for peer in peers:
                assert peer.pc is not None
                ice = peer.pc.getTransceivers()[0].sender.transport.transport
                pairs = ice._connection._nominated.values()
                assert pairs and all(p.local_candidate.type == "relay" for p in pairs)
        finally:
            for peer in peers:
                await peer.close()

    asyncio.run(scenario())
