"""Call pages around the media: proposed times, invites, the case record, the pre-call check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_babel import refresh

from telehealth import clock
from telehealth.extensions import db
from telehealth.video import services
from telehealth.video.models import CallProposal


def test_proposed_time_is_shown_in_each_readers_time_zone(
        call_consult: Any, world: dict[str, Any], auth: Any, client: Any) -> None:
    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    world["clinician"].timezone = "Africa/Lubumbashi"  # UTC+2
    world["specialist"].timezone = "America/New_York"  # UTC-5 in December
    db.session.commit()
    auth.login(world["clinician"])
    response = client.post(f"/consults/{call_consult.id}/call/proposals",
                           data={"starts_at": "2026-12-01T10:00"})
    assert response.status_code == 303
    proposal = db.session.query(CallProposal).one()
    assert proposal.starts_at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    refresh()  # the test's app context is shared by its requests: drop Babel's cached zone
    assert "Dec 1, 2026, 10:00:00" in client.get(f"/consults/{call_consult.id}").text
    auth.logout()
    auth.login(world["specialist"])
    refresh()
    assert "Dec 1, 2026, 3:00:00" in client.get(f"/consults/{call_consult.id}").text


def test_proposals_refuse_the_past_and_outsiders(
        call_consult: Any, world: dict[str, Any], auth: Any, client: Any) -> None:
    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    auth.login(world["clinician"])
    assert client.post(f"/consults/{call_consult.id}/call/proposals",
                       data={"starts_at": "2020-01-01T10:00"}).status_code == 400
    assert client.post(f"/consults/{call_consult.id}/call/proposals",
                       data={"starts_at": "soon"}).status_code == 303  # form error, flashed
    auth.logout()
    auth.login(world["coordinator"])
    assert client.post(f"/consults/{call_consult.id}/call/proposals",
                       data={"starts_at": "2026-12-01T10:00"}).status_code == 403
    assert db.session.query(CallProposal).count() == 0


def test_invite_link_is_shown_once(call_consult: Any, world: dict[str, Any], auth: Any,
                                   client: Any) -> None:
    auth.login(world["specialist"])
    response = client.post(f"/consults/{call_consult.id}/call/invites",
                           data={"guest_name": "Dr Second Opinion"})
    assert response.status_code == 200
    assert "/call/invite/" in response.text
    auth.logout()
    auth.login(world["other_clinician"])
    assert client.post(f"/consults/{call_consult.id}/call/invites",
                       data={"guest_name": "Intruder"}).status_code == 404


def test_case_page_records_the_call(app: Any, call_consult: Any, world: dict[str, Any],
                                    auth: Any, client: Any) -> None:
    with app.test_request_context():
        caller = services.caller_for(world["clinician"], None, call_consult.id)
        services.record_join(caller, "low")
        services.add_chat(caller, "Patient is here")
        services.record_leave(call_consult.id, caller.participant_id, "left")
        services.end_session(call_consult.id)
        db.session.commit()
    auth.login(world["specialist"])
    page = client.get(f"/consults/{call_consult.id}").text
    assert "Patient is here" in page and world["clinician"].name in page
    assert "profile: low" in page


def test_pre_call_check_page(world: dict[str, Any], auth: Any, client: Any) -> None:
    assert client.get("/call/check").status_code == 302  # sign in first
    auth.login(world["clinician"])
    page = client.get("/call/check").text
    assert 'id="verdict"' in page and 'data-probe-url="/call/check/probe"' in page
    assert "data-ice-servers='[]'" in page  # no STUN/TURN configured in the tests


def test_access_is_checked_before_the_form(call_consult: Any, world: dict[str, Any],
                                           auth: Any, client: Any) -> None:
    """An outsider learns nothing from form errors: the refusal comes first."""
    auth.login(world["coordinator"])  # may read the case, is not in its call
    for path in (f"/consults/{call_consult.id}/call/invites",
                 f"/consults/{call_consult.id}/call/proposals"):
        assert client.post(path, data={}).status_code == 403
