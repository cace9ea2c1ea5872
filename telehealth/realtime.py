"""Live events between processes: the Socket.IO message queue on Redis, one per deployment.

Several app processes share live events through Redis pub/sub. Pub/sub channels are
server-wide (not per database number), so each deployment names its own channel: two
deployments on one Redis server never hear each other. Besides Socket.IO's own messages,
the channel carries one of ours: "these users' sessions ended", on which every process
closes those users' sockets (sign-out, password or role change, deactivation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import socketio

logger = logging.getLogger(__name__)

# An internal event name no client event can take (clients cannot emit to other processes).
SESSIONS_ENDED = "telehealth:sessions-ended"
# After Redis comes back, the listener resubscribes within this many seconds (python-socketio
# doubles its wait up to a minute: 29 s of deaf process after a 35 s outage).
RETRY_SECONDS = 0.5


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
