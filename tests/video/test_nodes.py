"""Several processes ("nodes"): every participant of a call reaches the node that holds it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from flask import Flask

from telehealth.extensions import db
from telehealth.video.directory import DirectoryUnavailable, LocalDirectory, RedisDirectory
from telehealth.video.hub import CallHub, get_hub
from telehealth.video.models import VideoSession
from tests.conftest import sign_in
from tests.video.conftest import SignalClient, login_cookie
from tests.video.peers import CallPeer
from tests.video.test_browser import wait_playing
from tests.video.test_call import until
from tests.video.test_directory import redis_url

ROOT = Path(__file__).resolve().parent.parent.parent
ELSEWHERE = "http://127.0.0.1:9"  # a node that is not this process


def socket_url_of(page: str) -> str:
    """The node a call page opens its socket on ("" = the page's own origin)."""
    found = re.search(r'data-socket-url="([^"]*)"', page)
    assert found, "no data-socket-url on the call page"
    return found.group(1)


def connect_src(response: Any) -> list[str]:
    policy = response.headers["Content-Security-Policy"]
    directive = next(d for d in policy.split("; ") if d.startswith("connect-src "))
    return directive.split()[1:]


# ---------------------------------------------------------------- one process


def test_one_process_serves_the_call_on_the_pages_own_origin(
        app: Flask, call_consult: Any, world: dict[str, Any], auth: Any, client: Any) -> None:
    auth.login(world["clinician"])
    response = client.get(f"/consults/{call_consult.id}/call")
    assert response.status_code == 200
    assert socket_url_of(response.text) == ""
    assert connect_src(response) == ["'self'"]
    hub = get_hub(app)
    assert hub.directory.owner(call_consult.id) == hub.node.id  # claimed by the page


def test_a_page_is_sent_to_the_node_that_holds_the_call(
        app: Flask, call_consult: Any, world: dict[str, Any], auth: Any, client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    directory = LocalDirectory()
    directory.claim(call_consult.id, ELSEWHERE)
    monkeypatch.setattr(get_hub(app), "directory", directory)
    auth.login(world["specialist"])
    response = client.get(f"/consults/{call_consult.id}/call")
    assert socket_url_of(response.text) == ELSEWHERE
    # This page, and only this page, may open a socket there.
    assert connect_src(response) == ["'self'", ELSEWHERE, "ws://127.0.0.1:9"]
    assert connect_src(client.get(f"/consults/{call_consult.id}")) == ["'self'"]


def test_a_call_held_by_a_node_without_an_address_is_an_error_page(
        app: Flask, call_consult: Any, world: dict[str, Any], auth: Any, client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    directory = LocalDirectory()
    directory.claim(call_consult.id, "process-elsewhere")
    monkeypatch.setattr(get_hub(app), "directory", directory)
    auth.login(world["clinician"])
    response = client.get(f"/consults/{call_consult.id}/call")
    assert response.status_code == 503
    assert "cannot be reached" in response.text


class DownDirectory(LocalDirectory):
    def claim(self, consult_id: int, node_id: str) -> str:
        raise DirectoryUnavailable("connection refused")


def test_directory_down_is_a_clear_error(
        app: Flask, call_consult: Any, world: dict[str, Any], auth: Any, client: Any,
        monkeypatch: pytest.MonkeyPatch, signal_client: Callable[..., SignalClient],
        engine_calls: list[str]) -> None:
    monkeypatch.setattr(get_hub(app), "directory", DownDirectory())
    auth.login(world["clinician"])
    response = client.get(f"/consults/{call_consult.id}/call")
    assert response.status_code == 503
    assert "unavailable for a moment" in response.text
    signal = signal_client(world["specialist"])
    signal.emit("join", {"consult_id": call_consult.id, "profile": "low"})
    error = signal.wait("call_error")
    assert "unavailable for a moment" in error["message"]
    assert engine_calls == []


def test_join_on_a_node_that_does_not_hold_the_call_is_refused(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient], engine_calls: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A page loaded before the call moved must not start a second call here."""
    directory = LocalDirectory()
    directory.claim(call_consult.id, ELSEWHERE)
    monkeypatch.setattr(get_hub(app), "directory", directory)
    signal = signal_client(world["clinician"])
    signal.emit("join", {"consult_id": call_consult.id, "profile": "low"})
    error = signal.wait("call_error")
    assert error["event"] == "join" and error["moved"] is True
    assert error["node_url"] == ELSEWHERE
    assert "reload the page" in error["message"]
    assert engine_calls == []
    assert signal.connected  # refused, not dropped: the page reloads itself
    assert db.session.query(VideoSession).count() == 0


def test_the_holder_claims_while_members_are_in_and_releases_when_empty(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    hub = get_hub(app)
    signal = signal_client(world["clinician"])
    signal.emit("join", {"consult_id": call_consult.id, "profile": "low"})
    signal.wait("offer")
    assert hub.directory.owner(call_consult.id) == hub.node.id
    assert hub.claim_keeper is not None and hub.claim_keeper.is_alive()
    signal.emit("leave", {"consult_id": call_consult.id})
    signal.wait("left")
    assert hub.directory.owner(call_consult.id) is None


def test_the_claim_keeper_refreshes_claims_of_calls_with_members(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "VIDEO_DIRECTORY_TTL_SECONDS", 0.3)
    hub = CallHub(app)  # a hub of its own: no engine started, no socket
    try:
        hub.members[41] = {}  # a call with members here
        assert hub.owner(41) == hub.node.id
        hub.directory.claim(42, hub.node.id)  # a call that emptied: its claim runs out
        hub.start_claim_keeper()
        time.sleep(1.0)
        assert hub.directory.owner(41) == hub.node.id
        assert hub.directory.owner(42) is None
        hub.close()
        assert hub.directory.owner(41) is None  # given up at shutdown
        assert hub.claim_keeper is not None
        hub.claim_keeper.join(2)
        assert not hub.claim_keeper.is_alive()
    finally:
        hub.close()


# ---------------------------------------------------------------- two processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Threads of each test node's one gunicorn worker (the README runs 32; the test's few
# sockets need fewer, and every thread may hold a database connection).
NODE_THREADS = 16


class NodeProcess:
    """One app process under gunicorn: its master and its one worker, in a process group of
    their own. SIGTERM goes to the master (gunicorn's graceful stop, which the worker turns
    into moving its calls); SIGKILL, SIGSTOP and SIGCONT to both: the worker holds the
    calls, and a killed master's worker would otherwise stop by itself, cleanly."""

    def __init__(self, url: str, env: dict[str, str], log: Path) -> None:
        self.url, self.log = url, log
        with log.open("w") as out:  # the child writes on its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", str(NODE_THREADS),
                 "-b", url.removeprefix("http://"), "--graceful-timeout", "10",
                 # Two masters on one host would share the default control socket.
                 "--no-control-socket",
                 "tests.video.node_server:make_app()"],
                cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)

    def wait_ready(self, deadline: float) -> None:
        while True:
            assert self.process.poll() is None, f"node died: {self.log.read_text()[-3000:]}"
            try:
                if requests.get(f"{self.url}/login", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, \
                f"node did not start: {self.log.read_text()[-3000:]}"
            time.sleep(0.1)

    def send_signal(self, signum: int) -> None:
        if signum == signal.SIGTERM:
            self.process.send_signal(signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Stop as a deployment would (SIGTERM), or kill after 15 s."""
        self.send_signal(signal.SIGCONT)  # in case the test left it stopped
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # the worker too, whatever became of the master
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


@contextlib.contextmanager
def run_nodes(app: Flask, tmp_path: Path, redis: str, extra: list[dict[str, Any]],
              processes: list[NodeProcess] | None = None) -> Iterator[list[str]]:
    """App processes under the production server (one per `extra`: more TELEHEALTH_*
    variables) on the test's database, with `redis` as message queue and call directory;
    yields their base URLs (`processes` gets them)."""
    urls = [f"http://127.0.0.1:{free_port()}" for _ in extra]
    db.session.commit()  # the nodes must see what the test created
    processes = [] if processes is None else processes
    # No Celery worker runs in the tests: jobs (outbox delivery) run in the request, as
    # under TESTING, instead of going to a broker on TELEHEALTH_REDIS_URL.
    test_only = {"TESTING": True, "SERVER_NAME": None, "WTF_CSRF_ENABLED": False,
                 "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "JOBS_BROKER_URL": None}
    try:
        for n, (url, more) in enumerate(zip(urls, extra, strict=True)):
            # What the README's production section says each process needs.
            env = {**os.environ,
                   "TELEHEALTH_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                   "TELEHEALTH_REDIS_URL": redis,
                   "TELEHEALTH_VIDEO_NODE_URL": url,
                   # Each node serves call pages too, and sends them to the other.
                   "TELEHEALTH_VIDEO_ALLOWED_ORIGINS": ",".join(urls),
                   "TELEHEALTH_PUBLIC_BASE_URL": urls[0],
                   "TELEHEALTH_THREADS": str(NODE_THREADS),
                   "TELEHEALTH_VIDEO_RECONNECT_GRACE": "1",
                   "TELEHEALTH_NODE_TEST_CONFIG": json.dumps(test_only),
                   **{name: str(value) for name, value in more.items()}}
            processes.append(NodeProcess(url, env, tmp_path / f"node{n + 1}.log"))
        deadline = time.monotonic() + 60
        for process in processes:
            process.wait_ready(deadline)
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGTERM)  # all at once: they stop together
        for process in processes:
            process.stop()


@pytest.fixture()
def two_nodes(app: Flask, tmp_path: Path) -> Iterator[list[str]]:
    """Two app processes on one database, with Redis as message queue and call directory."""
    redis = redis_url()
    directory = RedisDirectory.from_url(redis)
    for key in directory.client.scan_iter(f"{directory.prefix}*"):
        directory.client.delete(key)  # consult ids restart with every test
    try:
        with run_nodes(app, tmp_path, redis, [{}, {}]) as urls:
            yield urls
    finally:
        for key in directory.client.scan_iter(f"{directory.prefix}*"):
            directory.client.delete(key)
        directory.client.close()


def test_two_nodes_route_both_participants_to_the_same_one(
        two_nodes: list[str], call_consult: Any, world: dict[str, Any]) -> None:
    node1, node2 = two_nodes
    clinician_cookie = login_cookie(node1, world["clinician"])
    specialist_cookie = login_cookie(node2, world["specialist"])

    def call_page(node: str, cookie: str) -> requests.Response:
        response = requests.get(f"{node}/consults/{call_consult.id}/call",
                                headers={"Cookie": cookie}, allow_redirects=False, timeout=10)
        assert response.status_code == 200, response.text[:500]
        return response

    # The clinician's page comes from node 1, which takes the call; the specialist's page
    # comes from node 2, which sends it to node 1.
    assert socket_url_of(call_page(node1, clinician_cookie).text) == node1
    specialist_page = call_page(node2, specialist_cookie)
    assert socket_url_of(specialist_page.text) == node1
    assert node1 in connect_src(specialist_page)
    assert socket_url_of(call_page(node1, specialist_cookie).text) == node1

    # A stale page of node 2 that joins there is refused and told where the call is.
    stale = SignalClient(node2, specialist_cookie, origin=node2)
    stale.connect()
    try:
        stale.emit("join", {"consult_id": call_consult.id, "profile": "low"})
        error = stale.wait("call_error")
        assert error["moved"] is True and error["node_url"] == node1
    finally:
        stale.close()

    # Another site's page may not open a call socket with the user's cookies (CORS).
    intruder = SignalClient(node1, specialist_cookie, origin="http://evil.example")
    with pytest.raises(socketio.exceptions.ConnectionError):
        intruder.connect()

    clinician = SignalClient(node1, clinician_cookie, origin=node1)
    specialist = SignalClient(node1, specialist_cookie, origin=node2)  # node 2's page
    clinician.connect()
    specialist.connect()

    async def scenario() -> None:
        one, two = CallPeer(clinician, "red"), CallPeer(specialist, "blue")
        try:
            await one.join(call_consult.id)
            await two.join(call_consult.id)
            layouts = [await s.await_event("peers", where=lambda d: len(d["peers"]) == 1 and
                                           d["peers"][0]["video_mid"])
                       for s in (clinician, specialist)]

            def both_ways() -> bool:
                return (one.colours_from(layouts[0], two.participant_id).get("blue", 0) >= 3
                        and two.colours_from(layouts[1], one.participant_id).get("red", 0) >= 3)

            await until(both_ways, timeout=20)
            specialist.emit("leave", {"consult_id": call_consult.id})
            await specialist.await_event("left")
            clinician.emit("leave", {"consult_id": call_consult.id})
            await clinician.await_event("left")
        finally:
            await one.close()
            await two.close()

    try:
        asyncio.run(scenario())
    finally:
        clinician.close()
        specialist.close()

    # The call emptied: node 1 gave it up, and the next page may place it anywhere.
    directory = RedisDirectory.from_url(redis_url())
    try:
        assert directory.owner(call_consult.id) is None
    finally:
        directory.client.close()
    assert socket_url_of(call_page(node2, specialist_cookie).text) == node2
    db.session.expire_all()
    sessions = db.session.query(VideoSession).all()
    assert [s.consult_id for s in sessions] == [call_consult.id], [
        (s.started_at, s.ended_at, [(p.joined_at, p.left_at, p.left_reason)
                                    for p in s.participations]) for s in sessions]


@pytest.mark.browser
def test_browsers_on_two_nodes_meet_on_the_one_holding_the_call(
        browser: Any, two_nodes: list[str], call_consult: Any, world: dict[str, Any]) -> None:
    """The specialist's page comes from node 2 and opens its socket on node 1: another
    port, so CORS, the session cookie (shared by the host's ports) and the page's CSP must
    all let it through."""
    node1, node2 = two_nodes
    pages = []
    for who, node in (("clinician", node1), ("specialist", node2)):
        context = browser.new_context(viewport={"width": 900, "height": 800})
        page = context.new_page()
        sign_in(page, node, world[who].email)
        page.goto(f"{node}/consults/{call_consult.id}/call")
        assert page.get_attribute("#call", "data-socket-url") == node1
        pages.append(page)
    try:
        for page in pages:
            state = wait_playing(page)
            assert state["w"] > 0 and state["h"] > 0
        pages[1].fill("#chat-input", "Hello from node 2's page")
        pages[1].click("#chat-form button")
        pages[0].wait_for_selector("#chat-log li:has-text(\"Hello from node 2's page\")",
                                   timeout=30_000)
    finally:
        for page in pages:
            page.click("#leave")
        for page in pages:
            page.context.close()


@pytest.mark.browser
def test_a_page_left_behind_by_a_moved_call_follows_it_without_a_reload(
        browser: Any, two_nodes: list[str], call_consult: Any, world: dict[str, Any]) -> None:
    """The specialist's page is sent to node 2, but before its socket joins, node 2's claim
    lapses and the clinician's page places the call on node 1: the stale page is refused,
    told where the call is, and meets the clinician on node 1 without reloading."""
    node1, node2 = two_nodes
    contexts = [browser.new_context(viewport={"width": 900, "height": 800}) for _ in range(2)]
    clinician, specialist = (context.new_page() for context in contexts)
    try:
        sign_in(specialist, node2, world["specialist"].email)
        held: list[Any] = []
        released = False

        def hold(route: Any) -> None:
            if released:
                route.continue_()
            else:
                held.append(route)  # the socket waits

        specialist.route(f"{node2}/socket.io/**", hold)
        specialist.goto(f"{node2}/consults/{call_consult.id}/call")
        assert specialist.get_attribute("#call", "data-socket-url") == node2
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            specialist.wait_for_timeout(100)
        assert held, "the page never opened its socket"

        directory = RedisDirectory.from_url(redis_url())
        try:
            directory.client.delete(f"{directory.prefix}{call_consult.id}")  # node 2 died
        finally:
            directory.client.close()
        sign_in(clinician, node1, world["clinician"].email)
        clinician.goto(f"{node1}/consults/{call_consult.id}/call")
        assert clinician.get_attribute("#call", "data-socket-url") == node1

        specialist.evaluate("window.notReloaded = true")
        released = True
        for route in held:
            route.continue_()
        for page in (clinician, specialist):
            state = wait_playing(page)
            assert state["w"] > 0 and state["h"] > 0
        assert specialist.evaluate("window.notReloaded === true")
    finally:
        for page in (clinician, specialist):
            if page.url.endswith("/call"):
                page.click("#leave")
        for context in contexts:
            context.close()
