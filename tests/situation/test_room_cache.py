"""The room's figures are computed once at a time per filters, however many coordinators
ask at the same moment (at 100,000 consults a computation takes seconds), and once a process
has figures no request waits for newer ones: it gets the last ones, marked `updating`, while
one background computation runs."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from telehealth.situation import services
from telehealth.situation.services import Filters, Room


def fake_room(version: int) -> Room:
    return Room(Filters(), None, [], {"version": version})  # type: ignore[arg-type,dict-item]


def test_figures_are_computed_once_and_served_while_recomputed(app: Any, monkeypatch: Any
                                                                ) -> None:
    calls: list[int] = []
    version = [1]
    computing = threading.Event()

    def slow_compute(filters: Filters) -> Room:
        calls.append(version[0])
        computing.set()
        time.sleep(0.3)
        return fake_room(version[0])

    monkeypatch.setattr(services, "compute_room", slow_compute)
    monkeypatch.setattr(services, "data_version", lambda: (version[0],))
    monkeypatch.setattr(services, "cache_seconds", lambda: 15.0)
    monkeypatch.setattr(services, "_CACHE", services.OrderedDict())
    filters = Filters()
    answers: list[Room] = []

    def ask() -> None:
        with app.app_context():
            answers.append(services.room(filters))

    def burst() -> float:
        answers.clear()
        started = time.monotonic()
        threads = [threading.Thread(target=ask) for _n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started

    def settle() -> None:  # the background computation has finished
        deadline = time.monotonic() + 5
        while services._COMPUTING and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not services._COMPUTING

    burst()  # nothing cached: one computes in line, seven wait for it
    assert calls == [1]
    assert [a.tables for a in answers] == [{"version": 1}] * 8
    assert not any(a.updating for a in answers)

    version[0] = 2  # the data changed: nobody waits, one background computation starts
    computing.clear()
    took = burst()
    assert took < 0.25
    assert [a.tables for a in answers] == [{"version": 1}] * 8
    assert all(a.updating for a in answers)  # the page says so, and asks again
    assert computing.wait(2)
    settle()
    assert calls == [1, 2]
    burst()  # the new figures, as they are
    assert [a.tables for a in answers] == [{"version": 2}] * 8
    assert not any(a.updating for a in answers)
    assert calls == [1, 2]

    # Same data, figures past their time: the last ones while one recomputes in the background.
    monkeypatch.setattr(services, "cache_seconds", lambda: 0.0001)
    time.sleep(0.01)
    took = burst()
    assert took < 0.25 and all(a.tables == {"version": 2} for a in answers)
    settle()
    assert calls == [1, 2, 2]


def test_a_failed_background_computation_keeps_the_last_figures(app: Any, monkeypatch: Any
                                                                 ) -> None:
    version = [1]

    def compute(filters: Filters) -> Room:
        if version[0] == 2:
            raise RuntimeError("database gone")
        return fake_room(version[0])

    monkeypatch.setattr(services, "compute_room", compute)
    monkeypatch.setattr(services, "data_version", lambda: (version[0],))
    monkeypatch.setattr(services, "cache_seconds", lambda: 15.0)
    monkeypatch.setattr(services, "_CACHE", services.OrderedDict())
    with app.app_context():
        assert services.room(Filters()).tables == {"version": 1}
        version[0] = 2
        stale = services.room(Filters())
        assert stale.tables == {"version": 1} and stale.updating
        deadline = time.monotonic() + 5
        while services._COMPUTING and time.monotonic() < deadline:
            time.sleep(0.01)
        again = services.room(Filters())  # still served; another background try
        assert again == replace(stale, updating=True)
