"""Call pages around the media: proposed times, invites, the case record, the pre-call check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask_babel import refresh

from telehealth import clock
from telehealth.errors import Conflict
from telehealth.extensions import db
from telehealth.video import services
from telehealth.video.models import CallProposal, ProposalStatus
from tests.conftest import take_consult


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
    # Refused on the consult's page with the reason, not on an error page that loses the case.
    past = client.post(f"/consults/{call_consult.id}/call/proposals",
                       data={"starts_at": "2020-01-01T10:00"})
    assert past.status_code == 303
    assert past.headers["Location"].endswith(f"/consults/{call_consult.id}#call")
    assert "Propose a time in the future." in client.get(f"/consults/{call_consult.id}").text
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


def _panel(client: Any, consult: Any) -> str:
    refresh()
    return client.get(f"/consults/{consult.id}").text


def _panel_at(moment: datetime, auth: Any, user: Any, client: Any, consult: Any) -> str:
    """The consult page at that moment, signed in afresh (a jump in time ends a session)."""
    clock.freeze(moment)
    auth.logout()
    auth.login(user)
    return _panel(client, consult)


def test_join_call_shows_only_near_an_agreed_time(
        app: Any, call_consult: Any, world: dict[str, Any], auth: Any, client: Any) -> None:
    """Proposed by one side, accepted by the other; "Join call" from 10 min before to 60 after."""
    assert app.config["VIDEO_JOIN_EARLY_MINUTES"] == 10
    assert app.config["VIDEO_JOIN_LATE_MINUTES"] == 60
    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    world["clinician"].timezone = "Africa/Lubumbashi"  # UTC+2
    db.session.commit()
    auth.login(world["clinician"])
    page = _panel(client, call_consult)
    assert 'id="join-call"' not in page and 'id="call-now"' in page  # urgent calls stay possible
    assert client.post(f"/consults/{call_consult.id}/call/proposals",
                       data={"starts_at": "2026-11-25T16:00"}).status_code == 303  # 14:00 UTC
    proposal = db.session.query(CallProposal).one()
    # Proposed is not agreed: the clinic cannot accept its own proposal.
    page = _panel(client, call_consult)
    assert f'id="accept-proposal-{proposal.id}"' not in page
    assert f'id="withdraw-proposal-{proposal.id}"' in page
    assert client.post(f"/consults/{call_consult.id}/call/proposals/{proposal.id}/accept"
                       ).status_code == 403
    assert 'id="join-call"' not in _panel_at(datetime(2026, 11, 25, 13, 55, tzinfo=UTC), auth,
                                             world["clinician"], client, call_consult)
    auth.logout()

    clock.freeze(datetime(2026, 11, 25, 12, 5, tzinfo=UTC))
    auth.login(world["specialist"])
    assert f'id="accept-proposal-{proposal.id}"' in _panel(client, call_consult)
    assert client.post(f"/consults/{call_consult.id}/call/proposals/{proposal.id}/accept"
                       ).status_code == 303
    db.session.refresh(proposal)
    assert proposal.status == ProposalStatus.ACCEPTED
    assert client.post(f"/consults/{call_consult.id}/call/proposals/{proposal.id}/accept"
                       ).status_code == 409
    auth.logout()

    auth.login(world["clinician"])
    for moment, shown in ((datetime(2026, 11, 25, 13, 49, tzinfo=UTC), False),  # 11 min early
                          (datetime(2026, 11, 25, 13, 50, tzinfo=UTC), True),
                          (datetime(2026, 11, 25, 14, 59, tzinfo=UTC), True),
                          (datetime(2026, 11, 25, 15, 0, tzinfo=UTC), False)):  # 60 min after
        page = _panel_at(moment, auth, world["clinician"], client, call_consult)
        assert ('id="join-call"' in page) is shown, moment
        assert ('id="call-now"' in page) is not shown, moment
    page = _panel_at(datetime(2026, 11, 25, 13, 0, tzinfo=UTC), auth, world["clinician"],
                     client, call_consult)
    assert "Next call: Nov 25, 2026, 4:00:00" in page  # in the clinician's own time zone
    assert "10 minutes before it" in page

    # The other clinic never sees a way into this call, whatever the time.
    clock.freeze(datetime(2026, 11, 25, 14, 0, tzinfo=UTC))
    auth.logout()
    auth.login(world["other_clinician"])
    page = client.get(f"/consults/{call_consult.id}")
    assert page.status_code == 404
    assert 'id="join-call"' not in page.text and 'id="call-now"' not in page.text
    auth.logout()
    auth.login(world["coordinator"])  # reads the case, is not in its call
    page = _panel(client, call_consult)
    assert 'id="join-call"' not in page and 'id="call-now"' not in page
    assert f'accept-proposal-{proposal.id}' not in page


def test_join_call_shows_while_a_call_is_in_progress(
        app: Any, call_consult: Any, world: dict[str, Any], auth: Any, client: Any) -> None:
    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    with app.test_request_context():
        caller = services.caller_for(world["specialist"], None, call_consult.id)
        services.record_join(caller, "low")  # an unscheduled call: the specialist is in it
        db.session.commit()
    auth.login(world["clinician"])
    page = _panel(client, call_consult)
    assert 'id="join-call"' in page and "A call is in progress." in page
    with app.test_request_context():
        services.record_leave(call_consult.id, caller.participant_id, "left")
        services.end_session(call_consult.id)
        db.session.commit()
    page = _panel(client, call_consult)
    assert 'id="join-call"' not in page and 'id="call-now"' in page


def test_join_window_follows_the_config(app: Any, call_consult: Any,
                                        world: dict[str, Any]) -> None:
    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    with app.test_request_context():
        proposal = services.propose_time(call_consult, world["specialist"],
                                         datetime(2026, 11, 25, 12, 30, tzinfo=UTC))
        services.set_proposal_status(proposal, call_consult, world["clinician"], "accept")
        window = services.join_window(call_consult, timedelta(minutes=10),
                                      timedelta(minutes=60))
        assert not window.open and window.next_agreed == proposal.starts_at
        assert services.join_window(call_consult, timedelta(minutes=30),
                                    timedelta(minutes=60)).open
        # Withdrawn by the side that proposed it: no window, nothing agreed.
        services.set_proposal_status(proposal, call_consult, world["specialist"], "withdraw")
        window = services.join_window(call_consult, timedelta(minutes=30),
                                      timedelta(minutes=60))
        assert not window.open and window.next_agreed is None
        with pytest.raises(Conflict):
            services.set_proposal_status(proposal, call_consult, world["specialist"],
                                         "withdraw")
        # A time that has passed can no longer be accepted.
        late = services.propose_time(call_consult, world["specialist"],
                                     datetime(2026, 11, 25, 12, 30, tzinfo=UTC))
        clock.freeze(datetime(2026, 11, 25, 12, 31, tzinfo=UTC))
        assert services.proposal_actions(late, call_consult, world["clinician"]) == []
        with pytest.raises(Conflict, match="passed"):
            services.set_proposal_status(late, call_consult, world["clinician"], "accept")


def test_answering_a_proposal_checks_access_first(
        call_consult: Any, world: dict[str, Any], auth: Any, client: Any,
        make_consult: Any) -> None:
    clock.freeze(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    proposal = services.propose_time(call_consult, world["specialist"],
                                     datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    db.session.commit()
    auth.login(world["coordinator"])
    for missing in (proposal.id, proposal.id + 100):
        assert client.post(f"/consults/{call_consult.id}/call/proposals/{missing}/accept"
                           ).status_code == 403
    auth.logout()
    auth.login(world["clinician"])
    assert client.post(f"/consults/{call_consult.id}/call/proposals/{proposal.id + 100}/accept"
                       ).status_code == 404
    # A proposal of another consult is not reachable through this one.
    other = make_consult(world["clinician"], patient_ref="P-2")
    take_consult(other, world["specialist"])
    db.session.commit()
    assert client.post(f"/consults/{other.id}/call/proposals/{proposal.id}/accept"
                       ).status_code == 404
    assert client.post(f"/consults/{call_consult.id}/call/proposals/{proposal.id}/accept"
                       ).status_code == 303
