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
from tests.video.conftest import SignalClient


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


# ---------------------------------------------------------------- the live room


ROOM_NAMESPACE = "/conference"
ROOM_EVENTS = ("offer", "peers", "peer_state", "call_error", "left", "send_profile", "deck",
               "call_moved", "roster", "slide", "muted", "removed", "send_video",
               "share_taken_over")


class RoomClient(SignalClient):
    """A python-socketio client on /conference whose received events queue up per name."""

    namespace = ROOM_NAMESPACE
    event_names = ROOM_EVENTS


@pytest.fixture(scope="session")
def _room_engine(app: Any) -> Any:
    """Stop the media engine's loop thread once the tests that used it are done."""
    from telehealth.video import hub as video_hub

    yield
    video_hub.shutdown(app)


@pytest.fixture()
def room_server(live_server: str, _room_engine: None, app: Any) -> Any:
    """The live server, and after the test no room left in the conference hub or engine."""
    yield live_server
    hub = app.extensions.get("conference_hub")
    if hub is not None:
        with hub.lock:
            hub.rooms.clear()
            hub.joined.clear()
            hub.attending.clear()
            hub.removed.clear()
        if hub.engine.running:
            hub.engine._call(hub.engine._close_all())


@pytest.fixture()
def live_conference(conference: dict[str, Any], make_user: Callable[..., Any]
                    ) -> dict[str, Any]:
    """The conference with its session under way (started five minutes ago) and two more
    clinicians of the invited clinic."""
    from telehealth.accounts.models import Role

    session = conference["session"]
    session.starts_at = (clock.now() - timedelta(minutes=5)).replace(microsecond=0)
    session.ends_at = session.starts_at + timedelta(minutes=90)
    second = make_user(Role.CLINICIAN, clinic=conference["clinic"])
    third = make_user(Role.CLINICIAN, clinic=conference["clinic"])
    db.session.commit()
    return {**conference, "clinician2": second, "clinician3": third}


@pytest.fixture()
def approved_case(live_conference: dict[str, Any]) -> Any:
    """The clinician presents an approved case in the live session (may share a screen)."""
    from telehealth.conferences import services
    from telehealth.conferences.models import CaseStatus

    case = services.create_case(live_conference["session"], live_conference["consult"],
                                live_conference["clinician"],
                                services.CaseInput(history="A woman with fever for 3 days.",
                                                   question="Malaria or typhoid?",
                                                   image_ids=[]))
    case.status = CaseStatus.APPROVED
    db.session.commit()
    return case


@pytest.fixture()
def room_client(room_server: str) -> Any:
    """Factory: a connected /conference client signed in as `user`."""
    from tests.video.conftest import login_cookie

    clients: list[RoomClient] = []

    def make(user: Any, connect: bool = True) -> RoomClient:
        db.session.commit()  # the server thread must see what the test created
        client = RoomClient(room_server, login_cookie(room_server, user))
        clients.append(client)
        if connect:
            client.connect()
        return client

    yield make
    for client in clients:
        client.close()
