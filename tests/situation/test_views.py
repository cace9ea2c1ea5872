"""The room's page, CSV, JSON and live event: coordinators and admins only."""

from __future__ import annotations

import csv
import io

import pytest

from telehealth.accounts.models import Role
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db, socketio
from tests.conftest import PASSWORD


def signed_in(app, user):
    client = app.test_client()
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code \
        == 302
    return client


@pytest.mark.parametrize("url", ["/situation", "/situation/demand.csv", "/situation/api",
                                 "/situation/api/speed_urgency", "/situation/api/nonsense"])
def test_clinicians_and_specialists_get_404(app, world, url):
    for role in ("clinician", "specialist"):
        response = signed_in(app, world[role]).get(url)
        assert response.status_code == 404, (role, url)
    assert signed_in(app, world["coordinator"]).get("/situation").status_code == 200


def test_nav_link_for_staff_only(app, world):
    assert 'href="/situation"' in signed_in(app, world["coordinator"]).get("/").text
    assert 'href="/situation"' in signed_in(app, world["admin"]).get("/").text
    assert 'href="/situation"' not in signed_in(app, world["clinician"]).get("/").text


def test_page_shows_figures_and_keeps_filters(app, seeded, make_user):
    coordinator = make_user(Role.COORDINATOR)
    page = signed_in(app, coordinator).get("/situation?specialty=cardiology&period=30").text
    assert '<option value="cardiology" selected>' in page
    assert '<option value="30" selected>' in page
    assert 'id="table-demand"' in page and "<svg" in page
    # Links keep the filters; the gap list names who to unblock.
    assert "/situation/demand.csv?period=30&amp;specialty=cardiology" in page
    assert "Chloé (on leave)" in page
    assert 'data-cell="dermatology:ar"' not in page  # filtered to cardiology


def test_page_says_when_its_figures_were_computed(app, seeded, make_user, monkeypatch):
    """Cached figures show their time; out-of-date ones (newer being computed) say so and
    carry the mark the room's script asks again on."""
    from telehealth.situation import services

    client = signed_in(app, make_user(Role.COORDINATOR))
    page = client.get("/situation").text
    assert "Figures as of" in page and "data-updating" not in page
    monkeypatch.setattr(services, "_CACHE", services.OrderedDict())
    monkeypatch.setattr(services, "cache_seconds", lambda: 15.0)
    monkeypatch.setattr(services, "_refresh_in_background", lambda *args: None)
    client.get("/situation")  # computed and cached
    version = services.data_version
    monkeypatch.setattr(services, "data_version", lambda: (*version(), "changed"))
    page = client.get("/situation").text
    assert "newer figures are being computed" in page and 'data-updating="1"' in page


def test_specialties_are_named_in_each_readers_language(app, seeded, make_user, monkeypatch):
    """The room is cached for everyone (and recomputed by a thread in the default language):
    the heat map and the gap list still name each specialty in the reader's language (an
    Arabic coordinator saw "Cardiology" there, walking the demo)."""
    from flask_babel import force_locale
    from flask_babel import gettext as _

    from telehealth.situation import services

    monkeypatch.setattr(services, "_CACHE", services.OrderedDict())
    with force_locale("en"):
        english_room = services.compute_room(services.Filters())
    monkeypatch.setattr(services, "room", lambda filters: english_room)
    coordinator = make_user(Role.COORDINATOR)
    coordinator.locale = "fr"
    db.session.commit()
    with force_locale("fr"):
        cardiology, dermatology = _("Cardiology"), _("Dermatology")
    assert cardiology != "Cardiology"
    page = signed_in(app, coordinator).get("/situation").text
    heat_map = page[page.index('id="fig-demand"'):page.index('id="fig-gaps"')]
    gaps = page[page.index('id="fig-gaps"'):page.index('id="fig-gaps"') + 3000]
    assert cardiology in heat_map and ">Cardiology<" not in heat_map
    assert f"<strong>{cardiology} ·" in gaps or f"<strong>{dermatology} ·" in gaps
    assert "<strong>Cardiology ·" not in gaps and "<strong>Dermatology ·" not in gaps


def test_csv_and_json(app, seeded, make_user):
    client = signed_in(app, make_user(Role.ADMIN))
    response = client.get("/situation/cascade.csv")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0][:3] == ["urgency", "consults_offered", "offers"]
    assert table[2][:5] == ["urgent", "5", "8", "1.0", "2.6"]
    room = client.get("/situation/api").get_json()
    assert room["figures"]["volunteers"]["rows"] == [{
        "volunteers": 5, "consults_accepted": 6, "busiest_10pct_volunteers": 1,
        "busiest_10pct_share": 0.6667, "idle_90_days": 2, "licences_expiring_30_days": 1}]
    one = client.get("/situation/api/deadline?urgency=urgent").get_json()
    assert one["filters"] == {"urgency": "urgent"}
    assert one["deadline"]["rows"][1]["share"] == 0.75


@pytest.mark.parametrize("query", ["period=5", "period=x", "clinic=abc", "clinic=99999",
                                   "language=xx", "urgency=soon", "specialty=astrology"])
def test_bad_filters_are_a_clear_400(app, world, query):
    client = signed_in(app, world["coordinator"])
    page = client.get(f"/situation?{query}")
    assert page.status_code == 400
    api = client.get(f"/situation/api?{query}")
    assert api.status_code == 400 and api.get_json()["error"]
    assert client.get("/situation/api/nonsense").status_code == 400
    assert client.get("/situation/nonsense.csv").status_code == 400


def test_room_page_is_small(app, seeded, make_user):
    """The whole room (every chart and table) fits a 256 kbps link in a few seconds."""
    page = signed_in(app, make_user(Role.COORDINATOR)).get("/situation")
    assert len(page.data) < 100_000
    assert all(len(svg) < 15_000 for svg in page.text.split("<svg")[1:])


def test_situation_socket_for_staff_and_changed_after_commit(app, world, make_consult):
    clients = {}
    for role in ("clinician", "specialist", "coordinator", "admin"):
        flask_client = signed_in(app, world[role])
        clients[role] = socketio.test_client(app, namespace="/situation",
                                             flask_test_client=flask_client)
    assert not clients["clinician"].is_connected("/situation")
    assert not clients["specialist"].is_connected("/situation")
    assert clients["coordinator"].is_connected("/situation")
    for role in ("coordinator", "admin"):
        clients[role].get_received("/situation")
    consult = make_consult(world["clinician"])  # submitted: a status change, committed
    for role in ("coordinator", "admin"):
        names = [m["name"] for m in clients[role].get_received("/situation")]
        assert "situation.changed" in names
    # Rolled back: nothing announced.
    db.session.get(Consult, consult.id)
    from telehealth.consults.services import transition

    transition(consult, ConsultStatus.CANCELLED)
    db.session.rollback()
    assert clients["coordinator"].get_received("/situation") == []
    for role in ("coordinator", "admin"):
        clients[role].disconnect(namespace="/situation")


def test_close_out_survey_by_form_and_api(app, world, make_consult, client):
    from telehealth.notes.services import add_note
    from tests.conftest import take_consult

    def answered():
        consult = make_consult(world["clinician"])
        take_consult(consult, world["specialist"])
        add_note(consult, world["specialist"], "Give aspirin.", answer=True)
        db.session.commit()
        return consult

    clinic = signed_in(app, world["clinician"])
    consult = answered()
    form = {"outcome": "treated_locally", "rating": "5", "referral_avoided": "yes",
            "course_changed": "no"}
    assert clinic.post(f"/consults/{consult.id}/close", data=form).status_code == 302
    db.session.refresh(consult)
    assert (consult.referral_avoided, consult.course_changed, consult.rating) == (True, False, 5)
    assert "referral-avoided" in clinic.get(f"/consults/{consult.id}").text
    consult = answered()
    response = clinic.post(f"/api/consults/{consult.id}/close",
                           json={"outcome": "referred", "referral_avoided": False})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["referral_avoided"], body["course_changed"]) == (False, None)
    consult = answered()
    refused = clinic.post(f"/api/consults/{consult.id}/close",
                          json={"outcome": "referred", "course_changed": "maybe"})
    assert refused.status_code == 422 and "course_changed" in refused.get_json()["fields"]
