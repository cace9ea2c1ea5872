"""Which process ("node") holds a consult's call, so that every participant reaches it.

A call's media lives in one engine, in one process. When several processes serve a
deployment, the call page asks the directory which node owns the call (claiming it for the
node that serves the page when nobody does) and opens its /call socket on that node. The
owner refreshes its claim while the call has members and releases it when the call empties;
a node that dies stops refreshing, so its claim expires and the next page claims the call
anew. One process alone keeps the directory in memory; with a Redis URL it is shared.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis

from telehealth.realtime import key_prefix

# Seconds a claim lives without a refresh (the lease): the longest a dead node's calls stay
# unreachable, should its "alive" key somehow outlive it.
DEFAULT_TTL_SECONDS = 30.0
# Seconds a node's "alive" key lives without a refresh (never more than the lease): how long
# a dead node's calls stay unreachable. The node writes it every third of that, so a stall
# of a few seconds (a busy machine) does not cost it its calls.
DEFAULT_ALIVE_SECONDS = 6.0


def alive_seconds(ttl_seconds: float) -> float:
    """How long a node counts as alive after its last heartbeat, for a given lease."""
    return min(ttl_seconds, DEFAULT_ALIVE_SECONDS)


class DirectoryUnavailable(Exception):
    """The shared directory cannot be reached (Redis down): no call can be placed."""


class CallDirectory(Protocol):
    """Who owns each consult's call; node ids are opaque strings."""

    def claim(self, consult_id: int, node_id: str) -> str:
        """The call's owner: `node_id` when nobody held it (now claimed), else the holder."""
        ...

    def owner(self, consult_id: int) -> str | None:
        """The node holding the call, or None."""
        ...

    def refresh(self, consult_id: int, node_id: str) -> bool:
        """Extend `node_id`'s claim; False when it no longer holds the call."""
        ...

    def release(self, consult_id: int, node_id: str) -> None:
        """Give the call up, if `node_id` holds it (never someone else's claim)."""
        ...

    def heartbeat(self, node_id: str) -> None:
        """`node_id` is alive: its claims count for another `alive_seconds`."""
        ...


class LocalDirectory:
    """One process: claims in a dict, with the same expiry rules as the shared directory."""

    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds, self.clock = ttl_seconds, clock
        self._lock = threading.Lock()
        self._claims: dict[int, tuple[str, float]] = {}  # consult id -> (node, expires at)

    def _live(self, consult_id: int) -> str | None:
        claim = self._claims.get(consult_id)
        if claim is None:
            return None
        if claim[1] <= self.clock():
            del self._claims[consult_id]
            return None
        return claim[0]

    def claim(self, consult_id: int, node_id: str) -> str:
        with self._lock:
            holder = self._live(consult_id)
            if holder is None:
                self._claims[consult_id] = (node_id, self.clock() + self.ttl_seconds)
                return node_id
            return holder

    def owner(self, consult_id: int) -> str | None:
        with self._lock:
            return self._live(consult_id)

    def refresh(self, consult_id: int, node_id: str) -> bool:
        with self._lock:
            if self._live(consult_id) != node_id:
                return False
            self._claims[consult_id] = (node_id, self.clock() + self.ttl_seconds)
            return True

    def release(self, consult_id: int, node_id: str) -> None:
        with self._lock:
            if self._live(consult_id) == node_id:
                del self._claims[consult_id]

    def heartbeat(self, node_id: str) -> None:
        """One process: the only node is alive as long as the directory is."""


# A claim's value is "<node id> <fencing token>": the token comes from a counter per call
# that only grows, so a node whose claim lapsed and was taken (even by itself, later)
# holds a token that no longer matches, and stops serving the call instead of refreshing.
# Compare-and-act in one step on the server: between a GET and a PEXPIRE/DEL the claim
# could expire and be taken by another node, whose claim we would then extend or delete.
# A claim whose node's "alive" key (ARGV[3] .. node) has lapsed is a dead node's: it is
# taken like a lapsed one. The alive key is named from the claim's value, not passed as a
# key: fine on one Redis server (not on a Redis Cluster).
_CLAIM = """
local holder = redis.call('get', KEYS[1])
if holder and redis.call('exists', ARGV[3] .. string.match(holder, '^(.*) ')) == 1 then
  return holder
end
local token = redis.call('incr', KEYS[2])
local value = ARGV[1] .. ' ' .. token
redis.call('set', KEYS[1], value, 'PX', ARGV[2])
redis.call('set', ARGV[3] .. ARGV[1], '1', 'PX', ARGV[4])
return value
"""
_OWNER = """
local holder = redis.call('get', KEYS[1])
if holder and redis.call('exists', ARGV[1] .. string.match(holder, '^(.*) ')) == 1 then
  return holder
end
return false
"""
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', ARGV[3] .. string.match(ARGV[1], '^(.*) '), '1', 'PX', ARGV[4])
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisDirectory:
    """Shared by every node: one key per call, claimed with a fencing token and a TTL the
    owner keeps refreshing, and one "alive" key per node."""

    def __init__(self, client: redis.Redis, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 prefix: str = "telehealth:call-node:", alive: float | None = None) -> None:
        """alive: seconds a node counts as alive after its heartbeat (from the lease)."""
        self.client, self.ttl_ms, self.prefix = client, int(ttl_seconds * 1000), prefix
        self.alive_ms = int((alive or alive_seconds(ttl_seconds)) * 1000)
        self.alive_prefix = f"{prefix}alive:"
        self._claim = client.register_script(_CLAIM)
        self._owner = client.register_script(_OWNER)
        self._refresh = client.register_script(_REFRESH)
        self._release = client.register_script(_RELEASE)
        # The claims this directory made, by call: "<node> <token>" as stored.
        self._lock = threading.Lock()
        self._held: dict[int, str] = {}

    @classmethod
    def from_url(cls, url: str, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 prefix: str = "telehealth:call-node:", alive: float | None = None
                 ) -> RedisDirectory:
        """A directory on the Redis at `url` (short time-outs: a page waits on it)."""
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return cls(client, ttl_seconds, prefix, alive)

    def _key(self, consult_id: int) -> str:
        return f"{self.prefix}{consult_id}"

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.RedisError as exc:
            raise DirectoryUnavailable(str(exc)) from exc

    def claim(self, consult_id: int, node_id: str) -> str:
        value = _text(self._run(self._claim, keys=[self._key(consult_id),
                                                   f"{self.prefix}fence:{consult_id}"],
                                args=[node_id, self.ttl_ms, self.alive_prefix,
                                      self.alive_ms]))
        holder = value.rsplit(" ", 1)[0]
        if holder == node_id:
            with self._lock:
                self._held[consult_id] = value  # a fresh token, or the one we hold
        return holder

    def token(self, consult_id: int) -> int | None:
        """The fencing token of this directory's claim on the call, if it made one."""
        with self._lock:
            value = self._held.get(consult_id)
        return int(value.rsplit(" ", 1)[1]) if value else None

    def owner(self, consult_id: int) -> str | None:
        holder = self._run(self._owner, keys=[self._key(consult_id)], args=[self.alive_prefix])
        if holder is None:
            return None
        return _text(holder).rsplit(" ", 1)[0]

    def heartbeat(self, node_id: str) -> None:
        self._run(self.client.set, f"{self.alive_prefix}{node_id}", "1", px=self.alive_ms)

    def refresh(self, consult_id: int, node_id: str) -> bool:
        with self._lock:
            value = self._held.get(consult_id)
        if value is None or value.rsplit(" ", 1)[0] != node_id:
            return False
        if self._run(self._refresh, keys=[self._key(consult_id)],
                     args=[value, self.ttl_ms, self.alive_prefix, self.alive_ms]):
            return True
        with self._lock:
            if self._held.get(consult_id) == value:
                del self._held[consult_id]  # lost: its token is spent
        return False

    def release(self, consult_id: int, node_id: str) -> None:
        with self._lock:
            value = self._held.pop(consult_id, None)
        if value is not None and value.rsplit(" ", 1)[0] == node_id:
            self._run(self._release, keys=[self._key(consult_id)], args=[value])


# ---------------------------------------------------------------- this node


@dataclass(frozen=True)
class Node:
    """This process as the directory knows it."""

    id: str
    # Public base URL of this node's Socket.IO (scheme, host, port, optional path prefix);
    # None: pages open their socket on their own origin.
    url: str | None


def is_node_url(node_id: str) -> bool:
    """Whether a node id is a URL a browser can open a socket on."""
    return node_id.startswith(("http://", "https://"))


def node_from_config(config: dict[str, Any]) -> Node:
    """VIDEO_NODE_URL names this node; without it, a process-unique id no page can route to."""
    url = (config.get("VIDEO_NODE_URL") or "").rstrip("/")
    if url:
        return Node(id=url, url=url)
    return Node(id=f"process-{uuid.uuid4().hex[:12]}", url=None)


def directory_from_config(config: dict[str, Any], kind: str = "call-node") -> CallDirectory:
    """Redis when the app has a message queue (several processes), else in memory. `kind`
    keeps apart rooms whose ids may coincide (a consult's call, a conference session's)."""
    ttl = float(config.get("VIDEO_DIRECTORY_TTL_SECONDS") or DEFAULT_TTL_SECONDS)
    url = config.get("SOCKETIO_MESSAGE_QUEUE")
    if url:
        return RedisDirectory.from_url(url, ttl, prefix=f"{key_prefix(config)}{kind}:")
    return LocalDirectory(ttl)


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def socket_origins(config: dict[str, Any]) -> list[str] | None:
    """Origins whose pages may open a Socket.IO connection here (Engine.IO's CORS check).

    None keeps Engine.IO's rule (the page's own origin only) for a single node. A node with
    a public URL of its own also serves pages of the public site and of the other nodes,
    listed one by one: never "*", or any site could open a call socket with the user's
    cookies.
    """
    node_url = config.get("VIDEO_NODE_URL")
    extra = [o.strip() for o in (config.get("VIDEO_ALLOWED_ORIGINS") or "").split(",")
             if o.strip()]
    if not node_url and not extra:
        return None
    origins = [origin_of(u) for u in (node_url, config.get("PUBLIC_BASE_URL"), *extra) if u]
    return list(dict.fromkeys(origins))


def connect_sources(url: str) -> list[str]:
    """CSP connect-src entries that let a page open Socket.IO (polling and WebSocket) at url."""
    origin = origin_of(url)
    secure = origin.startswith("https://")
    websocket = ("wss://" if secure else "ws://") + origin.split("://", 1)[1]
    return [origin, websocket]
