"""A conference series with a hub (the coordinator and the specialist), the clinician's clinic
invited, one session tomorrow, and a consult of the clinician with a photo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta
from typing import Any

import pytest

from telehealth import clock
from telehealth.conferences import services
from telehealth.conferences.models import ConferenceSession, MemberRole
from telehealth.extensions import db
from tests.conftest import image_bytes


@pytest.fixture()
def conference(world: dict[str, Any], make_consult: Callable[..., Any]) -> dict[str, Any]:
    coordinator = world["coordinator"]
    series = services.create_series(coordinator, services.SeriesInput(
        topic="HIV care in rural clinics", languages=["fr", "en"], timezone="Africa/Kinshasa",
        weekday=2, start=time(14, 0)))
    services.add_member(series, coordinator, MemberRole.SPECIALIST, user=world["specialist"])
    services.add_member(series, coordinator, MemberRole.PARTICIPANT, clinic=world["clinic"])
    start = (clock.now() + timedelta(days=1)).replace(microsecond=0)
    session = ConferenceSession(series_id=series.id, starts_at=start,
                                ends_at=start + timedelta(minutes=90))
    db.session.add(session)
    db.session.commit()
    consult = make_consult(world["clinician"], patient_ref="Okafor",
                           files=[("rash.jpg", image_bytes())])
    return {**world, "series": series, "session": session, "consult": consult}
