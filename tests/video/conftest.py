"""Fixtures for the video tests: the app served for real (HTTP + Socket.IO) on a free port,
and signed-in Socket.IO clients."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import socketio
from flask import Flask

from telehealth.accounts.models import User
from telehealth.extensions import db
from telehealth.extensions import socketio as flask_socketio
from telehealth.video import hub as video_hub
from telehealth.video.events import CallNamespace
from telehealth.video.probe import probes_for
from tests.conftest import PASSWORD, take_consult

NAMESPACE = "/call"
SERVER_EVENTS = ("offer", "peers", "peer_state", "call_error", "chat", "media", "left",
                 "send_profile", "call_moved")


@pytest.fixture(scope="session")
def _video_engine(app: Flask) -> Iterator[None]:
    """Stop the media engine's loop thread once the tests that used it are done."""
    yield
    video_hub.shutdown(app)


@pytest.fixture()
def live_server(live_server: str, _video_engine: None) -> str:
    """The shared live server (HTTP + Socket.IO on a free loopback port)."""
    return live_server


@pytest.fixture(autouse=True)
def _reset_calls(app: Flask) -> Iterator[None]:
    """Each test starts and ends with no call in the hub or the engine, and no claim
    keeper: this process's in-memory directory knows nothing of the calls the next test's
    app processes hold in Redis, and would end them as orphans."""
    yield
    hub = app.extensions.get("video_hub")
    if hub is not None:
        hub.stop_claim_keeper()
        with hub.lock:
            hub.members.clear()
            hub.joined.clear()
        for namespace in flask_socketio.server.namespace_handlers.values():
            if isinstance(namespace, CallNamespace):
                namespace.rates.clear()
        if hub.engine.running:
            probes_for(hub.engine).close_all()
            hub.engine._call(hub.engine._close_all())


def login_cookie(base_url: str, user: User | None, password: str = PASSWORD) -> str:
    """Sign in over HTTP and return the Cookie header for the session."""
    http = requests.Session()
    if user is not None:
        response = http.post(f"{base_url}/login",
                             data={"email": user.email, "password": password},
                             allow_redirects=False)
        assert response.status_code in (302, 303), response.text[:500]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


class SignalClient:
    """A python-socketio client on /call whose received events queue up per name."""

    namespace: str = NAMESPACE
    event_names: tuple[str, ...] = SERVER_EVENTS

    def __init__(self, base_url: str, cookie: str, origin: str | None = None) -> None:
        """origin: the Origin header a browser would send (the page's own origin)."""
        self.base_url, self.cookie, self.origin = base_url, cookie, origin
        self.sio = socketio.Client(reconnection=False)
        self.events: dict[str, queue.Queue[Any]] = {name: queue.Queue() for name in
                                                    self.event_names}
        self.order: list[tuple[str, Any]] = []  # every event received, in order
        for name in self.event_names:
            self.sio.on(name, self._keeper(name), namespace=self.namespace)

    def _keeper(self, name: str) -> Callable[[Any], None]:
        def keep(data: Any = None) -> None:
            self.order.append((name, data))
            self.events[name].put(data)
        return keep

    def connect(self, transport: str = "polling") -> None:
        # Long-polling by default: a websocket client takes ~3 s to close on werkzeug's server.
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if self.origin:
            headers["Origin"] = self.origin
        self.sio.connect(self.base_url, headers=headers, namespaces=[self.namespace],
                         transports=[transport], wait_timeout=5)

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected and self.namespace in self.sio.namespaces)

    def emit(self, event: str, data: Any) -> None:
        self.sio.emit(event, data, namespace=self.namespace)

    def wait(self, name: str, timeout: float = 10.0,
             where: Callable[[Any], bool] | None = None) -> Any:
        """The next event of this name (matching `where`), or AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {name!r} event within {timeout}s")
            try:
                data = self.events[name].get(timeout=min(remaining, 0.1))
            except queue.Empty:
                continue
            if where is None or where(data):
                return data

    async def await_event(self, name: str, timeout: float = 10.0,
                          where: Callable[[Any], bool] | None = None) -> Any:
        """Like wait(), without blocking the asyncio loop of the test's peers."""
        return await asyncio.get_running_loop().run_in_executor(None, self.wait, name, timeout,
                                                                where)

    def drain(self, name: str) -> list[Any]:
        items = []
        while not self.events[name].empty():
            items.append(self.events[name].get_nowait())
        return items

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture()
def engine_calls(app: Flask, live_server: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the engine methods called during the test (to prove refusals never reach it)."""
    calls: list[str] = []
    engine = video_hub.get_hub(app).engine
    for name in ("join", "answer", "add_candidate", "leave", "set_profile",
                 "set_receive_video"):
        original = getattr(engine, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(engine, name, spy)
    return calls


@pytest.fixture()
def call_consult(world: dict[str, Any], make_consult: Callable[..., Any]) -> Any:
    """A consult the specialist has taken: its call is open to both sides."""
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    db.session.commit()
    return consult


@pytest.fixture()
def signal_client(live_server: str) -> Iterator[Callable[..., SignalClient]]:
    """Factory: a connected /call client signed in as `user` (None: nobody)."""
    clients: list[SignalClient] = []

    def make(user: User | None = None, cookie: str | None = None,
             connect: bool = True, transport: str = "polling") -> SignalClient:
        db.session.commit()  # the server thread must see what the test created
        client = SignalClient(live_server, cookie if cookie is not None
                              else login_cookie(live_server, user))
        clients.append(client)
        if connect:
            client.connect(transport)
        return client

    yield make
    for client in clients:
        client.close()
