"""The call directory: which node holds each call, in memory and in Redis (same contract)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from telehealth.video.directory import (
    CallDirectory,
    DirectoryUnavailable,
    LocalDirectory,
    Node,
    RedisDirectory,
    connect_sources,
    directory_from_config,
    node_from_config,
    socket_origins,
)
from tests.conftest import need_service

REDIS_URL = os.environ.get("TELEHEALTH_TEST_REDIS_URL")
TTL = 0.5
NODE_A, NODE_B = "http://127.0.0.1:5001", "http://127.0.0.1:5002"


def redis_url() -> str:
    """The test Redis, or a skip (a failure in CI)."""
    if not REDIS_URL:
        need_service("Redis", "TELEHEALTH_TEST_REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need_service("Redis", f"{REDIS_URL}: {exc}")
    return REDIS_URL  # type: ignore[return-value]


@dataclass
class Directories:
    """Two nodes' views of one directory, and time passing (fake in memory, real in Redis)."""

    make: Callable[[], CallDirectory]
    wait: Callable[[float], None]

    def expire(self) -> None:
        self.wait(TTL + 0.2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def directories(request: pytest.FixtureRequest) -> Iterator[Directories]:
    if request.param == "memory":
        clock = FakeClock()
        shared = LocalDirectory(TTL, clock=clock)

        def advance(seconds: float) -> None:
            clock.now += seconds

        yield Directories(lambda: shared, advance)
        return
    url = redis_url()
    prefix = f"test-call-node:{uuid.uuid4().hex}:"
    made: list[RedisDirectory] = []

    def make() -> CallDirectory:
        # A client of its own per node, as two processes would have.
        made.append(RedisDirectory.from_url(url, TTL, prefix=prefix))
        return made[-1]

    yield Directories(make, time.sleep)
    for directory in made:
        for key in directory.client.scan_iter(f"{prefix}*"):
            directory.client.delete(key)
        directory.client.close()


def test_first_claim_wins_and_others_are_told_the_owner(directories: Directories) -> None:
    a, b = directories.make(), directories.make()
    assert a.owner(7) is None
    assert a.claim(7, NODE_A) == NODE_A
    assert b.claim(7, NODE_B) == NODE_A
    assert b.owner(7) == NODE_A
    assert a.claim(7, NODE_A) == NODE_A  # claiming again is harmless
    assert b.claim(8, NODE_B) == NODE_B  # another call is another key


def test_refresh_keeps_a_claim_alive_and_only_for_its_holder(directories: Directories) -> None:
    a, b = directories.make(), directories.make()
    a.claim(7, NODE_A)
    assert a.refresh(7, NODE_A)
    assert not b.refresh(7, NODE_B)
    assert not a.refresh(99, NODE_A)  # nothing to refresh: the caller must claim again
    assert a.owner(99) is None


def test_release_gives_the_call_up_but_never_someone_elses(directories: Directories) -> None:
    a, b = directories.make(), directories.make()
    a.claim(7, NODE_A)
    b.release(7, NODE_B)
    assert a.owner(7) == NODE_A
    a.release(7, NODE_A)
    assert b.owner(7) is None
    assert b.claim(7, NODE_B) == NODE_B


def test_a_dead_nodes_claim_expires_and_the_call_can_be_rehomed(
        directories: Directories) -> None:
    a, b = directories.make(), directories.make()
    a.claim(7, NODE_A)  # then node A dies: nobody refreshes
    directories.expire()
    assert b.owner(7) is None
    assert b.claim(7, NODE_B) == NODE_B
    assert not a.refresh(7, NODE_A)  # a node that comes back does not take it over
    a.release(7, NODE_A)
    assert b.owner(7) == NODE_B


def test_a_refreshed_claim_outlives_its_first_ttl(directories: Directories) -> None:
    a, b = directories.make(), directories.make()
    a.claim(7, NODE_A)
    for _ in range(4):
        directories.wait(TTL / 3)
        assert a.refresh(7, NODE_A)
    assert b.claim(7, NODE_B) == NODE_A


def test_two_nodes_claiming_at_once_agree_on_one_owner(directories: Directories) -> None:
    nodes = {NODE_A: directories.make(), NODE_B: directories.make()}
    rounds = 30
    results: dict[str, list[str]] = {name: [] for name in nodes}
    barrier = threading.Barrier(len(nodes))

    def claim_all(name: str) -> None:
        for consult_id in range(1, rounds + 1):
            barrier.wait(5)
            results[name].append(nodes[name].claim(consult_id, name))

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results[NODE_A] == results[NODE_B]  # both told the same owner, every time
    assert len(results[NODE_A]) == rounds
    for consult_id, owner in enumerate(results[NODE_A], start=1):
        assert nodes[NODE_A].owner(consult_id) == owner


def test_redis_down_is_reported_as_unavailable() -> None:
    directory = RedisDirectory.from_url("redis://127.0.0.1:1/0", TTL)
    for call in (lambda: directory.claim(1, NODE_A), lambda: directory.owner(1)):
        with pytest.raises(DirectoryUnavailable):
            call()
    # A claim it holds (its token known) cannot be refreshed or released either...
    directory._held[1] = f"{NODE_A} 1"
    for call in (lambda: directory.refresh(1, NODE_A), lambda: directory.release(1, NODE_A)):
        with pytest.raises(DirectoryUnavailable):
            call()
    # ...while one it never made is known not to be its own without asking.
    assert not directory.refresh(2, NODE_A)


# ---------------------------------------------------------------- configuration


def test_one_process_keeps_the_directory_in_memory_and_its_own_origin() -> None:
    config: dict[str, Any] = {"SOCKETIO_MESSAGE_QUEUE": None, "VIDEO_NODE_URL": None,
                              "VIDEO_ALLOWED_ORIGINS": "",
                              "PUBLIC_BASE_URL": "https://th.example.org"}
    assert isinstance(directory_from_config(config), LocalDirectory)
    node = node_from_config(config)
    assert node.url is None and node.id.startswith("process-")
    assert node_from_config(config).id != node.id  # unique per process, never shared
    # Engine.IO's own rule stays: a page may open a socket on its own origin only.
    assert socket_origins(config) is None


def test_a_node_with_redis_and_a_url() -> None:
    config = {"SOCKETIO_MESSAGE_QUEUE": "redis://127.0.0.1:6379/3",
              "VIDEO_NODE_URL": "https://th.example.org:8443/nodes/2/",
              "VIDEO_ALLOWED_ORIGINS": " https://n1.th.example.org , ",
              "VIDEO_DIRECTORY_TTL_SECONDS": 12,
              "PUBLIC_BASE_URL": "https://th.example.org/"}
    directory = directory_from_config(config)
    assert isinstance(directory, RedisDirectory) and directory.ttl_ms == 12_000
    directory.client.close()
    assert node_from_config(config) == Node("https://th.example.org:8443/nodes/2",
                                            "https://th.example.org:8443/nodes/2")
    # Strict: the node itself, the public site and the listed origins; never "*".
    assert socket_origins(config) == ["https://th.example.org:8443", "https://th.example.org",
                                      "https://n1.th.example.org"]


def test_connect_sources_cover_polling_and_websocket() -> None:
    assert connect_sources("http://127.0.0.1:5002") == ["http://127.0.0.1:5002",
                                                        "ws://127.0.0.1:5002"]
    assert connect_sources("https://th.example.org/nodes/1") == ["https://th.example.org",
                                                                 "wss://th.example.org"]
