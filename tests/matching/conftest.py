"""Matching fixtures: specialists placed in a time zone with weekly windows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from telehealth.accounts.models import Role, User
from telehealth.extensions import db
from tests.conftest import make_roster_entry


@pytest.fixture()
def make_specialist(make_user: Callable[..., User]) -> Callable[..., User]:
    def make(timezone: str = "UTC", windows: list[tuple[int, int, int]] | None = None,
             capacity: int = 3, languages: tuple[str, ...] = ("en", "fr"),
             specialties: tuple[str, ...] = ("cardiology",), **kwargs: Any) -> User:
        user = make_user(Role.SPECIALIST, timezone=timezone, roster=False,
                         languages=languages, specialties=specialties, **kwargs)
        make_roster_entry(user, windows=windows, capacity=capacity)
        db.session.commit()
        return user

    return make


def every_day(start_hour: int, end_hour: int) -> list[tuple[int, int, int]]:
    return [(day, start_hour * 60, end_hour * 60) for day in range(7)]
