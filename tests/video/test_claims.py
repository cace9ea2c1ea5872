"""The room claims both hubs share (telehealth.video.claims): one keeper, one hand-over."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from telehealth.errors import Unavailable
from telehealth.video.claims import ClaimedRooms, RoomKind
from telehealth.video.directory import LocalDirectory, Node

HERE, THERE = "http://127.0.0.1:8801", "http://127.0.0.1:8802"


class Engine:
    running = True


class Hub(ClaimedRooms):
    """The least a hub gives: its rooms, and how it sends their members away."""

    kind = RoomKind("test room", "test-claims", "/test", "room_id", str, str)

    def __init__(self, rooms: list[int]) -> None:
        self.app = type("App", (), {"config": {"VIDEO_DIRECTORY_TTL_SECONDS": 30}})()
        self.engine = Engine()
        self.node = Node(HERE, HERE)
        self.directory = LocalDirectory()
        self.lock = threading.RLock()
        self.rooms = rooms
        self.moved: list[tuple[int, str | None]] = []
        self.extra_rounds = 0
        self.init_claims()

    def held_rooms(self) -> list[int]:
        return list(self.rooms)

    def move_members(self, room_key: int, node_url: str | None) -> None:
        self.rooms.remove(room_key)
        self.moved.append((room_key, node_url))

    def after_keeper_round(self) -> None:
        self.extra_rounds += 1
        raise RuntimeError("the hub's own work failed")


def test_a_lost_claim_sends_the_members_to_the_new_owner_and_the_keeper_goes_on() -> None:
    hub = Hub([1, 2])
    assert hub.socket_url(1) == HERE and hub.owner(2) == HERE
    assert hub.claim_keeper is not None and hub.claim_keeper.is_alive()
    hub.stop_claim_keeper()  # its rounds, by hand from here
    hub.extra_rounds = 0
    hub.directory.release(2, HERE)
    hub.directory.claim(2, THERE)  # taken while our claim had lapsed
    hub.keep_claims_once()
    hub.keep_claims_once()  # the hub's failing extra work did not stop the keeper
    assert hub.moved == [(2, THERE)]
    assert hub.directory.owner(1) == HERE
    assert hub.extra_rounds == 2


def test_closing_gives_up_every_claim_and_refuses_new_ones() -> None:
    hub = Hub([1])
    hub.owner(1)
    hub.release_all_claims()
    assert hub.directory.owner(1) is None and hub.moved == [(1, None)]
    with pytest.raises(Unavailable):
        hub.owner(3)


def test_a_holder_no_page_can_reach_is_a_clear_error(app: Any) -> None:
    hub = Hub([])
    hub.directory.claim(5, "process-0123456789ab")
    with app.test_request_context(), pytest.raises(Unavailable, match="cannot be reached"):
        hub.socket_url(5)
    hub.stop_claim_keeper()


def test_an_apps_hub_is_made_once_and_the_one_made_on_top_closes_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """app_hub: one hub per app and key; made inside the making of another (the conference
    hub on the call hub) without a deadlock; closed at exit in the reverse order."""
    from flask import Flask

    from telehealth.video import claims

    registered: list[Any] = []
    monkeypatch.setattr(claims.atexit, "register", registered.append)
    app = Flask(__name__)
    made: list[str] = []

    class Below(Hub):
        def __init__(self, app: Flask) -> None:
            made.append("below")
            super().__init__([])

        def close(self) -> None:
            pass

    class Above(Below):
        def __init__(self, app: Flask) -> None:
            self.below = claims.app_hub(app, "below", Below)
            made.append("above")
            Hub.__init__(self, [])

    above = claims.app_hub(app, "above", Above)
    assert claims.app_hub(app, "above", Above) is above
    assert claims.app_hub(app, "below", Below) is above.below
    assert made == ["below", "above"]
    # atexit runs the last registered first: the hub on top, while the one below runs.
    assert registered == [above.below.close, above.close]
