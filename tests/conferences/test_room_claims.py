"""On several processes a conference room, like a call, belongs to the node whose claim counts,
and a claim counts only while its node's "alive" key does: the room hub must write that key
often enough that no other node takes a room it is serving. (That a dead node's claims lapse
with its alive key is tests/video/test_directory.py's.)"""

from __future__ import annotations

import time
import uuid
from typing import Any

from telehealth.conferences.room import Room, get_conference_hub
from telehealth.video.directory import RedisDirectory, alive_seconds
from tests.video.test_directory import redis_url


def test_the_room_hub_keeps_its_rooms_claimed_on_redis_between_two_rounds(app: Any) -> None:
    hub = get_conference_hub(app)
    lease = 3.0
    saved_directory, saved_lease = hub.directory, app.config.get("VIDEO_DIRECTORY_TTL_SECONDS")
    directory = RedisDirectory.from_url(redis_url(), lease,
                                        prefix=f"telehealth-test-{uuid.uuid4().hex}:conf-node:")
    other = RedisDirectory.from_url(redis_url(), lease, prefix=directory.prefix)
    session_id = 987_654
    app.config["VIDEO_DIRECTORY_TTL_SECONDS"] = lease
    hub.directory = directory
    try:
        # Rounds come well within the alive window (whatever the lease).
        assert hub.keeper_interval() <= alive_seconds(lease) / 2
        with hub.lock:
            hub.rooms[session_id] = Room()
        assert directory.claim(session_id, hub.node.id) == hub.node.id
        deadline = time.monotonic() + 2 * lease
        while time.monotonic() < deadline:
            hub.keep_claims_once()
            # Another node asking for the room is sent to us: our claim still counts.
            assert other.claim(session_id, "http://127.0.0.1:9") == hub.node.id
            time.sleep(hub.keeper_interval())
    finally:
        with hub.lock:
            hub.rooms.pop(session_id, None)
        hub.directory = saved_directory
        app.config["VIDEO_DIRECTORY_TTL_SECONDS"] = saved_lease
