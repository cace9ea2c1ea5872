"""What a newcomer reads: names and bands in their language, one date format, the hints."""

from __future__ import annotations

import re
from datetime import timedelta

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import update

from telehealth import clock
from telehealth.consults.models import Consult, ConsultMode, ConsultStatus
from telehealth.extensions import db
from telehealth.notes.services import add_note
from tests.conftest import take_consult


def test_specialty_names_and_age_bands_in_the_readers_language(client, auth, world,
                                                               make_consult):
    clinician = world["clinician"]
    clinician.locale = "fr"
    db.session.commit()
    consult = make_consult(clinician, patient_age_years=None)
    db.session.execute(update(Consult).where(Consult.id == consult.id)
                       .values(patient_age_band="1-4y"))
    db.session.commit()
    with force_locale("fr"):
        # What the French catalog says ("Cardiologie" once the lead merges
        # translations/pending/link.json into the catalogs).
        cardiology, band, oldest = _("Cardiology"), _("1–4 years"), _("65 years and over")
    auth.login(clinician)
    page = client.get(f"/consults/{consult.id}").text
    assert cardiology in page and band in page and "1-4y" not in page
    form = client.get("/consults/new").text
    assert cardiology in form and oldest in form
    assert cardiology in client.get("/").text  # the dashboard's list


def test_one_date_format_per_page(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    add_note(consult, world["specialist"], "Looks viral.", language="en")
    db.session.commit()
    auth.login(world["clinician"])
    page = client.get(f"/consults/{consult.id}").text
    visible = re.sub(r"<[^>]+>", " ", page)  # tags and their attributes (a title) dropped
    assert " ago" not in visible  # no relative times next to absolute ones
    assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2}\b", page)  # no short dates among medium
    client.post("/logout")
    # The specialist's dashboard: an offer's date and its deadline tomorrow, one format.
    other = make_consult(world["clinician"])
    db.session.commit()
    from telehealth.matching.models import Offer

    offer = db.session.scalar(db.select(Offer).where(Offer.consult_id == other.id))
    if offer is not None:
        offer.expires_at = clock.now() + timedelta(days=2)
        db.session.commit()
        auth.login(db.session.get(type(world["specialist"]), offer.specialist_id))
        dashboard = client.get("/").text
        assert "answer by" in dashboard
        assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2}\b", dashboard)


def test_the_video_box_is_folded_on_a_written_consult(client, auth, world, make_consult):
    written = make_consult(world["clinician"])
    video = make_consult(world["clinician"], mode=ConsultMode.VIDEO)
    for consult in (written, video):
        take_consult(consult, world["specialist"])
    db.session.commit()
    auth.login(world["clinician"])
    written_page = client.get(f"/consults/{written.id}").text
    video_page = client.get(f"/consults/{video.id}").text
    assert 'id="call-folded"' in written_page
    assert 'id="call-folded"' not in video_page and 'id="call"' in video_page


def test_the_answer_flag_is_explained_on_both_sides(client, auth, world, make_consult):
    consult = make_consult(world["clinician"])
    take_consult(consult, world["specialist"])
    db.session.commit()
    auth.login(world["specialist"])
    assert 'id="answer-flag-hint"' in client.get(f"/consults/{consult.id}").text
    client.post("/logout")
    add_note(consult, world["specialist"], "Probably viral; treat the fever.", language="en")
    db.session.commit()
    auth.login(world["clinician"])
    page = client.get(f"/consults/{consult.id}").text
    assert "has not marked a note as their answer yet" in page  # why there is no close form
    assert 'id="close"' not in page
    db.session.execute(update(Consult).where(Consult.id == consult.id)
                       .values(status=ConsultStatus.ANSWERED))
    db.session.commit()
    page = client.get(f"/consults/{consult.id}").text
    assert "you can close the consult now" in page and 'id="close"' in page


def test_the_clinic_sees_whom_its_request_was_offered_to_in_general_terms(client, auth, world,
                                                                          make_consult):
    consult = make_consult(world["clinician"])
    auth.login(world["clinician"])
    page = client.get(f"/consults/{consult.id}").text
    assert 'id="offered-to"' in page
    text = re.search(r'id="offered-to">(.*?)</p>', page, re.S).group(1)
    assert "Cardiology" in text and "volunteer" in text and "accept until" in text
    assert world["specialist"].name not in text  # never who


def test_the_time_zone_field_searches_instead_of_listing_every_zone(client, auth, world):
    auth.login(world["specialist"])
    page = client.get("/account/preferences").text
    assert page.count("<option") < 20  # the languages, not 400 zones
    assert 'data-zone-search="/api/timezones"' in page
    found = client.get("/api/timezones?q=kinsh").json
    assert {"zone": "Africa/Kinshasa", "place": found[0]["place"]} in found
    assert client.get("/api/timezones?q=").json == []
    assert len(client.get("/api/timezones?q=a").json) <= 15


def test_empty_pages_say_what_comes_next(client, auth, world):
    """An empty list tells a newcomer how it fills (found walking the fresh demo): who sets up
    case conferences, and where the surveillance counts come from."""
    auth.login(world["specialist"])
    page = client.get("/conferences").text
    assert "A coordinator sets up conference series" in page
    auth.logout()
    auth.login(world["coordinator"])
    page = client.get("/conferences").text
    assert "Start one with “New conference series”" in page
    assert "A coordinator sets up" not in page
    auth.logout()
    auth.login(world["clinician"])
    page = client.get("/surveillance").text
    assert "No coded cases in these weeks." in page
    assert "counted from the diagnoses (ICD-10 codes)" in page
    assert 'colspan="6"' in page  # syndrome, area and the four weeks shown


def test_no_empty_video_box_where_no_call_can_be(client, auth, world, make_consult):
    """A written consult that no call can reach (still offered; or read by a coordinator, who
    is no call member) showed a folded "Video call" that opened onto nothing."""
    waiting = make_consult(world["clinician"])
    taken = make_consult(world["clinician"])
    take_consult(taken, world["specialist"])
    db.session.commit()
    auth.login(world["clinician"])
    assert 'id="call-folded"' not in client.get(f"/consults/{waiting.id}").text
    assert 'id="call-folded"' in client.get(f"/consults/{taken.id}").text
    auth.logout()
    auth.login(world["coordinator"])
    assert 'id="call-folded"' not in client.get(f"/consults/{taken.id}").text
