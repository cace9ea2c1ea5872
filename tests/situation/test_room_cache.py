"""The room's figures are computed once per data version at a time, however many
coordinators ask at the same moment (at 100,000 consults a computation takes seconds)."""

from __future__ import annotations

import threading
import time
from typing import Any

from telehealth.situation import services
from telehealth.situation.services import Filters


def test_concurrent_requests_share_one_computation(app: Any, monkeypatch: Any) -> None:
    calls: list[int] = []
    version = [1]

    def slow_compute(filters: Filters) -> Any:
        calls.append(version[0])
        time.sleep(0.3)
        return f"room {version[0]}"

    monkeypatch.setattr(services, "compute_room", slow_compute)
    monkeypatch.setattr(services, "data_version", lambda: (version[0],))
    monkeypatch.setattr(services, "cache_seconds", lambda: 15.0)
    monkeypatch.setattr(services, "_CACHE", services.OrderedDict())
    filters = Filters()
    answers: list[Any] = []

    def ask() -> None:
        with app.app_context():
            answers.append(services.room(filters))

    def burst() -> None:
        threads = [threading.Thread(target=ask) for _n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    burst()  # nothing cached: one computes, seven wait for it
    assert calls == [1] and answers == ["room 1"] * 8
    version[0] = 2  # the data changed: the new figures, computed once
    answers.clear()
    burst()
    assert calls == [1, 2] and answers == ["room 2"] * 8
    # Same data, figures past their time: one recomputes, the others keep the last ones.
    monkeypatch.setattr(services, "cache_seconds", lambda: 0.0001)
    answers.clear()
    burst()
    assert calls.count(2) >= 2 and set(answers) == {"room 2"}
    assert len(calls) < 2 + 8
