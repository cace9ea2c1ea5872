"""Calls that fail safely (issue 17): one fenced owner per call, calls nobody holds end,
SIGTERM moves a process's calls at once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from telehealth.extensions import db
from telehealth.video import services
from telehealth.video.directory import RedisDirectory
from telehealth.video.hub import CallHub, get_hub
from telehealth.video.models import VideoSession
from tests.video.conftest import SignalClient, login_cookie
from tests.video.peers import CallPeer
from tests.video.test_call import until
from tests.video.test_deployments import RedisServer, own_redis  # noqa: F401  (fixture)
from tests.video.test_directory import redis_url
from tests.video.test_nodes import NodeProcess, run_nodes

OTHER_NODE = "http://127.0.0.1:1"


def where_is(node: str, consult_id: int, cookie: str) -> str:
    """Where a call page served by `node` opens its socket now (claiming the call there if
    nobody holds it)."""
    response = requests.get(f"{node}/consults/{consult_id}/call/where",
                            headers={"Cookie": cookie, "Accept": "application/json"}, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return str(response.json()["socket_url"])


def test_claims_carry_a_fencing_token_that_only_grows() -> None:
    url = redis_url()
    prefix = f"test-fence:{uuid.uuid4().hex}:"
    a, b = (RedisDirectory.from_url(url, 0.3, prefix) for _n in range(2))
    try:
        assert a.claim(7, "node-a") == "node-a"
        first = a.token(7)
        assert first is not None and a.refresh(7, "node-a")
        time.sleep(0.5)  # node a stalls past its lease; node b takes the call
        assert b.claim(7, "node-b") == "node-b"
        assert b.token(7) == first + 1
        assert not a.refresh(7, "node-a")  # fenced: a stops serving instead
        assert a.claim(7, "node-a") == "node-b"
        b.release(7, "node-b")
        assert a.claim(7, "node-a") == "node-a" and a.token(7) == first + 2
    finally:
        for directory in (a, b):
            for key in directory.client.scan_iter(f"{prefix}*"):
                directory.client.delete(key)
            directory.client.close()


def test_a_dead_nodes_claims_count_for_nothing_once_its_alive_key_lapses() -> None:
    """Node health apart from placement: well within the 30 s lease, a node that stopped
    saying it is alive holds nothing, and a live one keeps its calls by its heartbeat."""
    url = redis_url()
    prefix = f"test-alive:{uuid.uuid4().hex}:"
    a, b = (RedisDirectory.from_url(url, 30, prefix, alive=0.4) for _n in range(2))
    try:
        assert a.claim(7, "node-a") == "node-a" and a.claim(8, "node-a") == "node-a"
        for _n in range(6):  # node a lives on, refreshing no claim, only its heartbeat
            time.sleep(0.1)
            a.heartbeat("node-a")
        assert b.owner(7) == "node-a" and b.claim(7, "node-b") == "node-a"
        time.sleep(0.6)  # node a dies
        assert b.owner(7) is None
        assert b.claim(7, "node-b") == "node-b"  # taken over, fenced
        assert not a.refresh(7, "node-a")
        assert a.claim(7, "node-a") == "node-b"
        assert b.owner(8) is None
    finally:
        for directory in (a, b):
            for key in directory.client.scan_iter(f"{prefix}*"):
                directory.client.delete(key)
            directory.client.close()


def test_a_node_that_lost_its_claim_stops_serving_the_call_and_moves_its_pages(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    hub = get_hub(app)
    client = signal_client(world["clinician"])
    client.emit("join", {"consult_id": call_consult.id})
    client.wait("offer")
    deadline = time.monotonic() + 5  # the join commits just after its offer is sent
    while services.active_session(call_consult.id) is None and time.monotonic() < deadline:
        db.session.rollback()
        time.sleep(0.05)
    # The claim lapsed while this process stalled, and another node took the call.
    hub.directory.release(call_consult.id, hub.node.id)
    assert hub.directory.claim(call_consult.id, OTHER_NODE) == OTHER_NODE
    assert not hub.keep_claim(call_consult.id)
    hub.evict(call_consult.id)
    moved = client.wait("call_moved", 5)
    assert moved == {"consult_id": call_consult.id, "node_url": OTHER_NODE}
    assert hub.engine.participants(f"consult-{call_consult.id}") == []
    assert call_consult.id not in hub.members
    # The call goes on elsewhere: nothing ended here.
    db.session.expire_all()
    assert services.active_session(call_consult.id) is not None
    client.emit("chat", {"consult_id": call_consult.id, "body": "still here?"})
    assert "not joined" in client.wait("call_error")["message"]
    hub.directory.release(call_consult.id, OTHER_NODE)


def test_a_call_no_node_holds_with_nobody_in_it_is_ended(
        app: Flask, call_consult: Any, world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    caller = services.Caller(call_consult.id, f"u{world['clinician'].id}", "Dr A",
                             user_id=world["clinician"].id)
    services.record_join(caller, "low")  # its owner died with the caller in it
    db.session.commit()
    hub = CallHub(app)  # another process's hub: no engine, no member
    hub.alive_seconds = 0  # looks need not span any time here
    try:
        assert hub.end_orphaned_calls() == []  # first look: maybe a claim about to return
        assert hub.end_orphaned_calls() == [call_consult.id]
        db.session.expire_all()
        session = db.session.query(VideoSession).one()
        assert session.ended_at is not None
        assert all(p.left_reason == "ended" for p in session.participations)
        # A call whose owner is alive (it claims again between looks) is left alone.
        services.record_join(caller, "low")
        db.session.commit()
        assert hub.end_orphaned_calls() == []
        hub.directory.claim(call_consult.id, OTHER_NODE)
        assert hub.end_orphaned_calls() == []
    finally:
        hub.close()


def test_sigterm_moves_the_calls_of_a_node_at_once(
        app: Flask, tmp_path: Path, own_redis: RedisServer,  # noqa: F811
        call_consult: Any, world: dict[str, Any]) -> None:
    processes: list[NodeProcess] = []
    ttl = 30  # the lease: SIGTERM must not wait for it
    with run_nodes(app, tmp_path, own_redis.url,
                   [{"TELEHEALTH_VIDEO_DIRECTORY_TTL": ttl}] * 2, processes) as (node1, node2):
        cookie = login_cookie(node1, world["clinician"])
        first = requests.get(f"{node1}/consults/{call_consult.id}/call/where",
                             headers={"Cookie": cookie, "Accept": "application/json"},
                             timeout=10)
        assert first.json() == {"socket_url": node1}
        signal_one = SignalClient(node1, cookie, origin=node1)
        signal_one.connect()

        async def scenario() -> None:
            peer = CallPeer(signal_one, "red")
            try:
                await peer.join(call_consult.id)
                assert peer.pc is not None
                pc = peer.pc
                await until(lambda: pc.connectionState == "connected", 20)
                sent_at = time.monotonic()
                processes[0].send_signal(signal.SIGTERM)
                moved = await signal_one.await_event("call_moved", 10)
                assert moved["node_url"] is None  # ask the app where the call lives now
                assert time.monotonic() - sent_at < 5
            finally:
                await peer.close()

        try:
            asyncio.run(scenario())
        finally:
            signal_one.close()
        # The page asks where the call lives: the surviving node takes it at once.
        where = requests.get(f"{node2}/consults/{call_consult.id}/call/where",
                             headers={"Cookie": cookie, "Accept": "application/json"},
                             timeout=10)
        assert where.json() == {"socket_url": node2}
        signal_two = SignalClient(node2, cookie, origin=node2)
        signal_two.connect()

        async def rejoin() -> None:
            peer = CallPeer(signal_two, "red")
            try:
                await peer.join(call_consult.id)
                assert peer.pc is not None
                pc = peer.pc
                await until(lambda: pc.connectionState == "connected", 20)
            finally:
                await peer.close()

        try:
            asyncio.run(rejoin())
        finally:
            signal_two.close()
        assert processes[0].wait(20) is not None


REMOTE_TRACK = """() => {
  const video = document.querySelector('.tile.remote video');
  const stream = video && video.srcObject;
  const track = stream && stream.getVideoTracks()[0];
  return track ? {id: track.id, t: video.currentTime, w: video.videoWidth} : null;
}"""


def wait_new_video(page: Any, old_id: str, timeout: float) -> None:
    """Wait until the remote tile plays a video track other than `old_id`."""
    deadline, first = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        state = page.evaluate(REMOTE_TRACK)
        if state and state["id"] != old_id and state["w"] > 0:
            if first is None:
                first = state
            elif state["t"] > first["t"] + 0.5:
                return
        page.wait_for_timeout(200)
    raise AssertionError(f"no new video: {page.evaluate(REMOTE_TRACK)}; "
                         f"status: {page.text_content('#call-status')}")


@pytest.mark.browser
def test_pages_recover_by_themselves_when_the_owner_of_their_call_is_killed(
        app: Flask, browser: Any, tmp_path: Path, own_redis: RedisServer,  # noqa: F811
        call_consult: Any, world: dict[str, Any]) -> None:
    from tests.conftest import screenshot, sign_in
    from tests.video.test_browser import wait_playing

    lease = 4
    processes: list[NodeProcess] = []
    with run_nodes(app, tmp_path, own_redis.url,
                   [{"TELEHEALTH_VIDEO_DIRECTORY_TTL": lease}] * 2, processes) as (node1, node2):
        # Node 1 holds the call; both pages come from node 2 (the public site, in effect)
        # and open their sockets on node 1.
        cookie = login_cookie(node1, world["clinician"])
        contexts = [browser.new_context(viewport={"width": 900, "height": 800})
                    for _n in range(2)]
        pages = [context.new_page() for context in contexts]
        try:
            for page, who in zip(pages, ("clinician", "specialist"), strict=True):
                sign_in(page, node2, world[who].email)
            # Claimed now, the call stays node 1's while the pages load (within the lease).
            requests.get(f"{node1}/consults/{call_consult.id}/call/where",
                         headers={"Cookie": cookie, "Accept": "application/json"}, timeout=10)
            for page in pages:
                page.goto(f"{node2}/consults/{call_consult.id}/call")
                assert page.get_attribute("#call", "data-socket-url") == node1
            old = []
            for page in pages:
                wait_playing(page)
                old.append(page.evaluate(REMOTE_TRACK)["id"])
            processes[0].kill()
            killed_at = time.monotonic()
            for page in pages:  # a clear status while the call is found again
                page.wait_for_function(
                    "() => /lost|moving/i.test(document.getElementById('call-status')"
                    ".textContent)", timeout=10_000)
            screenshot(pages[0], "call-owner-killed-looking-for-the-call")
            for page, old_id in zip(pages, old, strict=True):
                wait_new_video(page, old_id, killed_at + lease + 5 - time.monotonic())
            recovered = time.monotonic() - killed_at
            print(f"media again {recovered:.1f} s after the kill (lease {lease} s)")
            assert recovered < lease + 5
            for page in pages:
                assert "Connected" in (page.text_content("#call-status") or "")
            screenshot(pages[1], "call-owner-killed-recovered")
        finally:
            for page in pages:
                if page.url.endswith("/call"):
                    page.click("#leave", timeout=2_000)
            for context in contexts:
                context.close()


def test_a_call_whose_owner_is_killed_and_that_nobody_rejoins_is_ended(
        app: Flask, tmp_path: Path, own_redis: RedisServer,  # noqa: F811
        call_consult: Any, world: dict[str, Any]) -> None:
    """SIGKILL the owner of a call whose only member then goes away: the other process
    ends the call (session end time, consult page) within lease + 10 s."""
    lease = 4
    processes: list[NodeProcess] = []
    with run_nodes(app, tmp_path, own_redis.url,
                   [{"TELEHEALTH_VIDEO_DIRECTORY_TTL": lease}] * 2, processes) as (node1, node2):
        cookie = login_cookie(node1, world["clinician"])
        assert where_is(node1, call_consult.id, cookie) == node1
        assert where_is(node2, call_consult.id, cookie) == node1  # node 2 served a page too
        client = SignalClient(node1, cookie, origin=node2)
        client.connect()

        async def scenario() -> None:
            peer = CallPeer(client, "red")
            try:
                await peer.join(call_consult.id)
                assert peer.pc is not None
                pc = peer.pc
                await until(lambda: pc.connectionState == "connected", 20)
            finally:
                await peer.close()

        try:
            asyncio.run(scenario())
            processes[0].kill()
            killed_at = time.monotonic()
        finally:
            client.close()
        consult_page = f"{node2}/consults/{call_consult.id}"
        assert "A call is in progress" in requests.get(
            consult_page, headers={"Cookie": cookie}, timeout=10).text

        def ended() -> bool:
            db.session.rollback()
            session = db.session.query(VideoSession).one_or_none()
            return session is not None and session.ended_at is not None

        while not ended() and time.monotonic() - killed_at < lease + 10:
            time.sleep(0.2)
        took = time.monotonic() - killed_at
        print(f"call ended {took:.1f} s after its owner was killed (lease {lease} s)")
        assert ended() and took < lease + 10
        assert "A call is in progress" not in requests.get(
            consult_page, headers={"Cookie": cookie}, timeout=10).text


def test_a_stalled_owner_that_resumes_hands_its_call_to_the_new_owner(
        app: Flask, tmp_path: Path, own_redis: RedisServer,  # noqa: F811
        call_consult: Any, world: dict[str, Any]) -> None:
    """SIGSTOP the owner past its lease, a page is loaded through the other node (which
    takes the call), SIGCONT: the stalled node hands its member over within 5 s, and both
    participants meet on the new owner, media both ways."""
    lease = 3
    processes: list[NodeProcess] = []
    with run_nodes(app, tmp_path, own_redis.url,
                   [{"TELEHEALTH_VIDEO_DIRECTORY_TTL": lease}] * 2, processes) as (node1, node2):
        clinician_cookie = login_cookie(node1, world["clinician"])
        specialist_cookie = login_cookie(node2, world["specialist"])
        clients = [SignalClient(node1, clinician_cookie, origin=node1),
                   SignalClient(node2, specialist_cookie, origin=node2)]
        clients[0].connect()

        async def scenario() -> None:
            first = CallPeer(clients[0], "red")
            peers = [first]
            try:
                await first.join(call_consult.id)
                processes[0].send_signal(signal.SIGSTOP)
                await asyncio.sleep(lease + 1.5)
                where = requests.get(f"{node2}/consults/{call_consult.id}/call/where",
                                     headers={"Cookie": specialist_cookie,
                                              "Accept": "application/json"}, timeout=10)
                assert where.json() == {"socket_url": node2}
                # SIGCONT once the page is loaded, before it joins: a process stopped in
                # the middle of a commit holds database locks (the audit chain's) that
                # every other process's next write waits for.
                processes[0].send_signal(signal.SIGCONT)
                resumed = time.monotonic()
                clients[1].connect()
                second = CallPeer(clients[1], "blue")
                peers.append(second)
                await second.join(call_consult.id)
                # The stalled node lets go: it moves its page (`call_moved`), or the page's
                # socket is gone (it stalled past Engine.IO's ping time-out too).
                await until(lambda: not clients[0].connected or any(
                    name == "call_moved" for name, _data in clients[0].order), 5)
                assert time.monotonic() - resumed < 5
                # ... and never takes the call back.
                directory = RedisDirectory.from_url(own_redis.url)
                try:
                    for _n in range(10):
                        assert directory.owner(call_consult.id) == node2
                        await asyncio.sleep(0.2)
                finally:
                    directory.client.close()
                # The page follows: it asks where the call lives, and joins there.
                where = requests.get(f"{node1}/consults/{call_consult.id}/call/where",
                                     headers={"Cookie": clinician_cookie,
                                              "Accept": "application/json"}, timeout=10)
                assert where.json() == {"socket_url": node2}
                clients[0].close()
                clients[0] = SignalClient(node2, clinician_cookie, origin=node1)
                clients[0].connect()
                again = CallPeer(clients[0], "red")
                peers.append(again)
                await again.join(call_consult.id)
                layouts = [await c.await_event("peers", 15, where=lambda d: len(d["peers"]) == 1
                                               and d["peers"][0]["video_mid"])
                           for c in clients]
                await until(lambda: again.colours_from(layouts[0], second.participant_id)
                            .get("blue", 0) >= 3
                            and second.colours_from(layouts[1], again.participant_id)
                            .get("red", 0) >= 3, 20)
            finally:
                for peer in peers:
                    await peer.close()

        try:
            asyncio.run(scenario())
        finally:
            processes[0].send_signal(signal.SIGCONT)
            for client in clients:
                client.close()
