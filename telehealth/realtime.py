"""Live events between processes: the Socket.IO message queue on Redis, one per deployment.

Several app processes share live events through Redis pub/sub. Pub/sub channels are
server-wide (not per database number), so each deployment names its own channel: two
deployments on one Redis server never hear each other. Besides Socket.IO's own messages,
the channel carries one of ours: "these users' sessions ended", on which every process
closes those users' sockets (sign-out, password or role change, deactivation).

While Redis is down, what a process publishes waits in a bounded buffer of its own (oldest
dropped first, none older than a few minutes) and goes out, in order, as soon as Redis is
back and the other processes listen again; python-socketio alone would log it and drop it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import redis
import socketio

logger = logging.getLogger(__name__)

# An internal event name no client event can take (clients cannot emit to other processes).
SESSIONS_ENDED = "telehealth:sessions-ended"
# After Redis comes back, the listener resubscribes within this many seconds (python-socketio
# doubles its wait up to a minute: 29 s of deaf process after a 35 s outage).
RETRY_SECONDS = 0.5
# Messages a process keeps while Redis is down, and for how long: enough for an outage of a
# minute or two; past that, pages show the state on their next load (and notifications are
# in the database anyway).
UNPUBLISHED_MAX = 1000
UNPUBLISHED_MAX_AGE_SECONDS = 300.0
# After Redis returns, the kept messages go out once every process that listened before
# listens again (they resubscribe within RETRY_SECONDS), or after this long at the latest.
REPLAY_WAIT_SECONDS = 2.0
# How often the processes listening are counted, and how long after trouble with Redis the
# count is left alone.
LISTENERS_LOOK_SECONDS = 1.0
LISTENERS_SETTLE_SECONDS = 10.0


def deployment_name(config: dict[str, Any]) -> str:
    """The name this deployment's channel and keys carry (TELEHEALTH_DEPLOYMENT_NAME)."""
    return str(config.get("DEPLOYMENT_NAME") or "telehealth")


def socketio_channel(config: dict[str, Any]) -> str:
    """The deployment's Socket.IO channel: its name and its Redis database number, so two
    deployments on different database numbers differ even with the default name."""
    url = config.get("SOCKETIO_MESSAGE_QUEUE") or ""
    database = urlsplit(url).path.strip("/") or "0"
    return f"{deployment_name(config)}:db{database}:socketio"


def key_prefix(config: dict[str, Any]) -> str:
    """Prefix of the deployment's own Redis keys (the call directory's, ...)."""
    return f"{deployment_name(config)}:"


class DeploymentRedisManager(socketio.RedisManager):
    """python-socketio's Redis manager on the deployment's channel, resubscribing promptly
    after an outage, that also carries "sessions ended" to every process."""

    def __init__(self, url: str, channel: str,
                 on_sessions_ended: Callable[[set[int]], object]) -> None:
        super().__init__(url, channel=channel,
                         redis_options={"socket_connect_timeout": 2,
                                        "health_check_interval": 2})
        self.on_sessions_ended = on_sessions_ended
        # A client of its own for publishing: the listener reconnects on its own schedule.
        self.publisher = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.unpublished: deque[tuple[float, dict[str, Any]]] = deque(maxlen=UNPUBLISHED_MAX)
        self.unpublished_lock = threading.Lock()
        self.replayer: threading.Thread | None = None
        # Subscribers of the channel (this process included) while Redis was well, looked
        # at every few seconds: who must listen again before what was kept goes out.
        self.listeners = 0
        self.last_trouble = 0.0
        # From the start: a process that only publishes (no socket of its own yet) never
        # subscribes, but must know whom to wait for after an outage.
        self.watcher = threading.Thread(target=self._count_listeners, daemon=True,
                                        name="live-events-listeners")
        self.watcher.start()

    def _publish(self, data: dict[str, Any]) -> None:
        """Publish now, or keep the message (in order) until Redis is back."""
        with self.unpublished_lock:
            if not self.unpublished:
                try:
                    self.listeners = max(self.listeners, int(self.publisher.publish(
                        self.channel, self.json.dumps(data))))
                    return
                except redis.RedisError as exc:
                    self.last_trouble = time.monotonic()
                    logger.warning("live events: cannot publish to Redis (%s); keeping "
                                   "them until it is back", exc)
            self.unpublished.append((time.monotonic(), data))
            if self.replayer is None or not self.replayer.is_alive():
                self.replayer = threading.Thread(target=self._replay, daemon=True,
                                                 name="live-events-replay")
                self.replayer.start()

    def _replay(self) -> None:
        """Send the kept messages once Redis is back and the others listen again."""
        back_at: float | None = None
        while True:
            time.sleep(RETRY_SECONDS / 2)
            try:
                subscribers = self._subscribers()
            except redis.RedisError:
                self.last_trouble = time.monotonic()
                back_at = None
                continue
            back_at = back_at or time.monotonic()
            # Unknown (0): nobody was counted before the outage, so wait the whole time.
            if ((not self.listeners or subscribers < self.listeners)
                    and time.monotonic() - back_at < REPLAY_WAIT_SECONDS):
                continue
            with self.unpublished_lock:
                if self._send_unpublished():
                    self.replayer = None
                    return

    def _subscribers(self) -> int:
        counts = self.publisher.execute_command("PUBSUB", "NUMSUB", self.channel)
        return int(counts[1]) if len(counts) > 1 else 0

    def _send_unpublished(self) -> bool:
        """Publish what was kept, oldest first (under the lock); False: Redis went again."""
        sent = dropped = 0
        while self.unpublished:
            kept_at, data = self.unpublished[0]
            if time.monotonic() - kept_at <= UNPUBLISHED_MAX_AGE_SECONDS:
                try:
                    self.publisher.publish(self.channel, self.json.dumps(data))
                except redis.RedisError:
                    return False
                sent += 1
            else:
                dropped += 1
            self.unpublished.popleft()
        logger.warning("live events: Redis is back; %d kept event(s) sent, %d too old dropped",
                       sent, dropped)
        return True

    def _count_listeners(self) -> None:
        """Count the processes listening on the channel every LISTENERS_LOOK_SECONDS."""
        while True:
            try:
                count = self._subscribers()
                # Not just after trouble: the processes may not all listen again yet.
                if time.monotonic() - self.last_trouble > LISTENERS_SETTLE_SECONDS:
                    self.listeners = count
            except redis.RedisError:
                self.last_trouble = time.monotonic()
            time.sleep(LISTENERS_LOOK_SECONDS)

    def publish_sessions_ended(self, user_ids: Iterable[int]) -> None:
        """Tell the other processes to close these users' sockets."""
        self._publish({"method": "emit", "event": SESSIONS_ENDED, "data": sorted(user_ids),
                       "namespace": "/", "room": None, "skip_sid": None, "callback": None,
                       "host_id": self.host_id})

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("event") == SESSIONS_ENDED:
            self.on_sessions_ended({int(u) for u in message.get("data") or []})
            return
        super()._handle_emit(message)

    def _redis_listen_with_retries(self) -> Iterator[Any]:
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                yield from self.pubsub.listen()
            except Exception as exc:  # redis raises several kinds; all mean "try again"
                self.last_trouble = time.monotonic()
                logger.warning("live events: cannot receive from Redis (%s); retrying in "
                               "%.1f s", exc, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)


def client_manager(config: dict[str, Any], on_sessions_ended: Callable[[set[int]], object]
                   ) -> DeploymentRedisManager | None:
    """The message queue of a deployment with several processes (None: one process)."""
    url = config.get("SOCKETIO_MESSAGE_QUEUE")
    if not url:
        return None
    return DeploymentRedisManager(url, socketio_channel(config), on_sessions_ended)
