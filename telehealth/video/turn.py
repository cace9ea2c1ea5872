"""ICE servers for browsers and the engine; short-lived TURN credentials (TURN REST scheme)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class IceSettings:
    """STUN/TURN settings of a deployment."""

    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_seconds: int = 3600


def turn_credentials(secret: str, user_key: str, now_ts: int, ttl_seconds: int
                     ) -> tuple[str, str]:
    """Username "<expiry>:<user>" and its HMAC-SHA1 credential, as coturn's use-auth-secret."""
    username = f"{now_ts + ttl_seconds}:{user_key}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(settings: IceSettings, user_key: str, now_ts: int) -> list[dict[str, object]]:
    """RTCIceServer dictionaries (browser shape) for one user, TURN credentials minted fresh."""
    servers: list[dict[str, object]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = turn_credentials(settings.turn_secret, user_key, now_ts,
                                                settings.turn_ttl_seconds)
        servers.append({"urls": list(settings.turn_urls), "username": username,
                        "credential": credential})
    return servers
