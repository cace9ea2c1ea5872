"""Fixtures for the trust tests: a consult in a chosen state, with notes and attachments."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import time, timedelta
from typing import Any

import pytest
from flask import Flask

from telehealth import clock, uploads
from telehealth.accounts.models import Role
from telehealth.consults.services import Upload
from telehealth.diagnoses.services import add_diagnosis
from telehealth.extensions import db
from telehealth.matching.services import accept_consult
from telehealth.notes.services import add_note
from telehealth.roster.services import add_leave, get_profile, invite_specialist
from telehealth.translation.services import add_translation
from telehealth.video import hub as video_hub
from telehealth.video.services import create_invite, propose_time
from tests.conftest import _empty_tables, image_bytes
from tests.surveillance.helpers import surveillance_pages

ROLES = ["clinician", "other_clinician", "specialist", "other_specialist", "coordinator",
         "admin", "anonymous"]


@pytest.fixture(scope="session")
def call_engine(app: Flask) -> Iterator[None]:
    """Stop the media engine's loop thread (a /call "join" starts it) when the tests end."""
    yield
    video_hub.shutdown(app)


class EchoTranslator:
    """A machine translator that answers at once, so that the route's access check is tested."""

    def translate(self, text: str, source: str, target: str) -> str:
        return f"[{target}] {text}"


@pytest.fixture()
def build_case(app: Flask, monkeypatch: pytest.MonkeyPatch, world: dict[str, Any],
               make_consult: Callable[..., Any], make_clinic: Callable[..., Any],
               make_user: Callable[..., Any]) -> Callable[..., dict]:
    """Return build(state, fresh=False): the world plus a consult in that state and its objects.

    States: draft, offered (to world["specialist"]), accepted (by world["specialist"], with a
    case photo, a clinician's note in English carrying a photo, the specialist's French
    translation of it, the specialist's diagnosis, an unused guest link to the call, whose
    token is objects["call_token"], and a call time the specialist proposed for tomorrow),
    answered. In every state the specialist has a scanned
    licence and a leave next year, and a coordinator has sent a sign-up link (its token is
    objects["token"]). `fresh` empties every table and makes a new world first.
    """
    monkeypatch.setitem(app.extensions, "machine_translator", EchoTranslator())

    def build(state: str = "accepted", fresh: bool = False) -> dict[str, Any]:
        if fresh:
            _empty_tables()
            clinic, other = make_clinic("Goma"), make_clinic("Maputo", languages=("pt",))
            world.update(
                clinic=clinic, other_clinic=other,
                clinician=make_user(Role.CLINICIAN, clinic=clinic),
                other_clinician=make_user(Role.CLINICIAN, clinic=other),
                specialist=make_user(Role.SPECIALIST),
                other_specialist=make_user(Role.SPECIALIST, specialties=("dermatology",)),
                coordinator=make_user(Role.COORDINATOR), admin=make_user(Role.ADMIN),
            )
        clinician, specialist = world["clinician"], world["specialist"]
        consult = make_consult(clinician, submit=state != "draft",
                               files=[("case.jpg", image_bytes())])
        objects: dict[str, Any] = {**world, "consult": consult,
                                   "attachment": consult.attachments[0]}
        objects.update(_roster_objects(world, consult.id))
        if state in ("accepted", "answered"):
            accept_consult(consult, specialist)
            note = add_note(consult, clinician, "Temperature 39.2 this morning.",
                            [Upload(io.BytesIO(image_bytes()), "chart.jpg")], language="en")
            objects["translation"] = add_translation(note, specialist, "fr",
                                                     "Température 39,2 ce matin.")
            objects["diagnosis"] = add_diagnosis(consult, specialist, "R50.9")
            _invite, objects["call_token"] = create_invite(consult, clinician, "Interpreter")
            objects["proposal"] = propose_time(consult, specialist,
                                               clock.now() + timedelta(days=1))
            db.session.commit()
            objects["note"] = note
            objects["note_attachment"] = note.attachments[0]
            objects.update(_conference_objects(world, consult))
        if state == "answered":
            add_note(consult, specialist, "Probably viral.", answer=True)
            db.session.commit()
        # An area holding the clinic, an alert there and a bulletin share link (surveillance).
        objects["surveillance"] = surveillance_pages(world)
        return objects

    return build


def _roster_objects(world: dict[str, Any], serial: int) -> dict[str, Any]:
    """The specialist's licence scan and a leave (next year: no effect on today's matching),
    and an unused sign-up link."""
    specialist = world["specialist"]
    profile = get_profile(specialist)
    if not profile.document_stored_name:
        checked = uploads.check_upload(io.BytesIO(image_bytes()), "licence.jpg")
        profile.document_stored_name, _digest = uploads.store(db.session, checked)
        profile.document_name = checked.original_name
    next_year = clock.now().date() + timedelta(days=365)
    leave = add_leave(specialist, next_year, next_year + timedelta(days=4), "Conference",
                      specialist)
    _invite, token = invite_specialist(f"invited{serial}@example.org", world["coordinator"])
    db.session.commit()
    return {"leave": leave, "token": token, "specialty": specialist.specialties[0]}


def _conference_objects(world: dict[str, Any], consult: Any) -> dict[str, Any]:
    """A case conference on the consult: the coordinator and the specialist are its hub, the
    clinician's clinic is invited; tomorrow's session holds an approved case (with an image),
    a submitted one, a clean draft and a draft with a flagged phone number; the clinician
    attended all of it; an unused invitation link for the other clinic (conf_token); one slide
    for the room (conf_slide)."""
    from telehealth.conferences import services as conf
    from telehealth.conferences.models import AttendanceKind, ConferenceSession, MemberRole

    coordinator, clinician = world["coordinator"], world["clinician"]
    series = conf.create_series(coordinator, conf.SeriesInput(
        "HIV care", ["fr", "en"], "Africa/Kinshasa", 2, time(14, 0)))
    conf.add_member(series, coordinator, MemberRole.SPECIALIST, user=world["specialist"])
    conf.add_member(series, coordinator, MemberRole.PARTICIPANT, clinic=world["clinic"])
    start = clock.now() + timedelta(days=1)
    session = ConferenceSession(series_id=series.id, starts_at=start,
                                ends_at=start + timedelta(minutes=90))
    db.session.add(session)
    db.session.flush()

    def case(history: str, images: bool = False) -> Any:
        return conf.create_case(session, consult, clinician, conf.CaseInput(
            history, "What next?", [consult.attachments[0].id] if images and consult.attachments
            else []))

    approved, submitted = case("A woman in her thirties.", True), case("Fever.")
    for item in (approved, submitted):
        conf.submit_case(item, clinician)
    conf.approve_case(approved, coordinator)
    conf.record_attendance(session, clinician, AttendanceKind.JOIN, session.starts_at)
    conf.record_attendance(session, clinician, AttendanceKind.LEAVE, session.ends_at)
    _invitation, token = conf.create_invitation(series, coordinator, clinic=world["other_clinic"])
    slide = conf.add_slides(session, coordinator, [(io.BytesIO(image_bytes()), "slide.jpg")])[0]
    objects = {"conf_series": series, "conf_session": session, "conf_case": approved,
               "conf_submitted": submitted, "conf_clean": case("Cough."),
               "conf_draft": case("Call +243 812 345 678."),
               "conf_image": approved.images[0] if approved.images else None,
               "conf_token": token, "conf_slide": slide}
    db.session.commit()
    return objects
