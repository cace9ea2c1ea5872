"""Several processes that fail safely (issue 17), with app processes and a Redis server the
test starts itself: sign-out closes sockets on every process; deployments sharing a Redis
server never hear each other; live events come back promptly after a Redis outage."""

from __future__ import annotations

import queue
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from flask import Flask

from telehealth.realtime import socketio_channel
from telehealth.security.sessions import user_room
from tests.conftest import need_service
from tests.video.conftest import login_cookie
from tests.video.test_nodes import free_port, run_nodes

NOTIFICATIONS = "/notifications"


class RedisServer:
    """A redis-server of the test's own on a free loopback port, that can be stopped and
    started again on the same port."""

    def __init__(self, tmp_path: Path) -> None:
        self.port, self.dir = free_port(), tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        need_service("Redis", "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Listener:
    """A signed-in /notifications socket that keeps every event it gets."""

    def __init__(self, base_url: str, cookie: str) -> None:
        self.sio = socketio.Client(reconnection=False)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.sio.on("*", lambda event, data=None: self.events.put((event, data)),
                    namespace=NOTIFICATIONS)
        self.sio.connect(base_url, headers={"Cookie": cookie, "Origin": base_url},
                         namespaces=[NOTIFICATIONS], transports=["polling"], wait_timeout=5)

    def got(self, timeout: float) -> list[tuple[str, Any]]:
        deadline, seen = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            try:
                seen.append(self.events.get(timeout=0.05))
            except queue.Empty:
                if seen:
                    break
        return seen

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def emitter(redis: str, deployment: str | None) -> socketio.RedisManager:
    """What a process of that deployment publishes on (write-only, like a worker)."""
    channel = socketio_channel({"SOCKETIO_MESSAGE_QUEUE": redis, "DEPLOYMENT_NAME": deployment})
    return socketio.RedisManager(redis, channel=channel, write_only=True)


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_signing_out_on_one_process_closes_the_users_sockets_on_the_other(
        app: Flask, tmp_path: Path, own_redis: RedisServer, world: dict[str, Any]) -> None:
    with run_nodes(app, tmp_path, own_redis.url, [{}, {}]) as (node1, node2):
        clinician = world["clinician"]
        cookie = login_cookie(node1, clinician)
        listener = Listener(node2, cookie)
        call = socketio.Client(reconnection=False)
        call.connect(node2, headers={"Cookie": cookie, "Origin": node2}, namespaces=["/call"],
                     transports=["polling"], wait_timeout=5)
        try:
            assert listener.sio.connected and call.connected
            response = requests.post(f"{node1}/logout", headers={"Cookie": cookie},
                                     allow_redirects=False, timeout=10)
            assert response.status_code in (302, 303)
            assert wait_until(lambda: not listener.sio.connected and not call.connected, 2.0)
            # Nothing reaches them afterwards (they are gone from every room).
            emitter(own_redis.url, None).emit("notification", {"text": "patient P-1"},
                                              namespace=NOTIFICATIONS,
                                              room=user_room(clinician.id))
            assert not [e for e in listener.got(1.0) if e[0] == "notification"]
        finally:
            listener.close()
            if call.connected:
                call.disconnect()


def test_deployments_sharing_a_redis_server_never_see_each_others_events(
        app: Flask, tmp_path: Path, own_redis: RedisServer, world: dict[str, Any]) -> None:
    clinician = world["clinician"]
    with run_nodes(app, tmp_path, own_redis.url,
                   [{"TELEHEALTH_DEPLOYMENT_NAME": "north"},
                    {"TELEHEALTH_DEPLOYMENT_NAME": "south"}]) as nodes:
        listeners = [Listener(node, login_cookie(node, clinician)) for node in nodes]
        try:
            for deployment, mine, other in (("north", 0, 1), ("south", 1, 0)):
                emitter(own_redis.url, deployment).emit(
                    "notification", {"from": deployment}, namespace=NOTIFICATIONS,
                    room=user_room(clinician.id))
                assert ("notification", {"from": deployment}) in listeners[mine].got(3.0)
                assert not listeners[other].got(1.0)
        finally:
            for listener in listeners:
                listener.close()


def test_live_events_resume_promptly_after_a_redis_outage_and_none_is_lost(
        app: Flask, tmp_path: Path, own_redis: RedisServer, world: dict[str, Any],
        make_consult: Any) -> None:
    """Redis stops for 20 s: live events between processes work again within 3 s of its
    return, and what a process published meanwhile arrives then instead of being lost: a
    note's notification written on node 1 for the specialist listening on node 2, and the
    clinician's sign-out on node 1, which closes their socket on node 2."""
    from tests.conftest import take_consult

    clinician, specialist = world["clinician"], world["specialist"]
    consult = make_consult(clinician)
    take_consult(consult, specialist)
    with run_nodes(app, tmp_path, own_redis.url, [{}, {}]) as (node1, node2):
        clinician_cookie = login_cookie(node1, clinician)
        listener = Listener(node2, login_cookie(node2, specialist))
        signed_out = Listener(node2, clinician_cookie)
        try:
            time.sleep(1.5)  # each process has counted who listens on the channel
            own_redis.stop()
            time.sleep(2)
            response = requests.post(f"{node1}/consults/{consult.id}/notes",
                                     data={"body": "Written while Redis is down"},
                                     headers={"Cookie": clinician_cookie},
                                     allow_redirects=False, timeout=10)
            assert response.status_code in (302, 303), response.text[:500]
            response = requests.post(f"{node1}/logout", headers={"Cookie": clinician_cookie},
                                     allow_redirects=False, timeout=10)
            assert response.status_code in (302, 303)
            time.sleep(18)
            assert not listener.got(0.2)
            own_redis.start()
            back = time.monotonic()
            seen: list[tuple[str, Any]] = []
            while time.monotonic() - back < 6 and not any(
                    e == ("notification", {"n": 1}) for e in seen):
                emitter(own_redis.url, None).emit("notification", {"n": 1},
                                                  namespace=NOTIFICATIONS,
                                                  room=user_room(specialist.id))
                seen += listener.got(0.2)
            took = time.monotonic() - back
            assert ("notification", {"n": 1}) in seen, "no live event after Redis came back"
            assert took < 3.0, took
            assert wait_until(lambda: not signed_out.sio.connected, 3.0 - took)
            seen += listener.got(1.0)
            notes = [data for event, data in seen if event == "note.new"]
            assert [note["consult_id"] for note in notes] == [consult.id], seen  # once
            assert listener.sio.connected
        finally:
            listener.close()
            signed_out.close()


def test_what_a_process_publishes_while_redis_is_down_goes_out_in_order_once_it_is_back(
        own_redis: RedisServer) -> None:
    import json

    import redis

    from telehealth.realtime import DeploymentRedisManager

    channel = "test:socketio"
    manager = DeploymentRedisManager(own_redis.url, channel, lambda user_ids: None)

    def subscriber() -> Any:
        pubsub = redis.Redis.from_url(own_redis.url).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel)
        return pubsub

    def received(pubsub: Any, count: int, timeout: float) -> list[Any]:
        deadline, got = time.monotonic() + timeout, []
        while len(got) < count and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                got.append(json.loads(message["data"])["n"])
        return got

    listening = subscriber()
    assert wait_until(lambda: manager.listeners == 1, 3.0)  # counted while Redis is well
    manager._publish({"n": 0})
    assert received(listening, 1, 2.0) == [0]
    own_redis.stop()
    for n in (1, 2, 3):
        manager._publish({"n": n})  # kept, without waiting for Redis
    assert len(manager.unpublished) == 3
    own_redis.start()
    back = time.monotonic()
    listening = subscriber()  # the other process listens again
    assert received(listening, 3, 3.0) == [1, 2, 3]
    assert time.monotonic() - back < 3.0
    assert wait_until(lambda: not manager.unpublished, 1.0)
    manager._publish({"n": 4})  # and straight through again
    assert received(listening, 1, 2.0) == [4]
