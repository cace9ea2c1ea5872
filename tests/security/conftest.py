"""Fixtures for the trust tests: a consult in a chosen state, with notes and attachments."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from telehealth.accounts.models import Role
from telehealth.consults.services import Upload
from telehealth.extensions import db
from telehealth.matching.services import accept_consult
from telehealth.notes.services import add_note
from tests.conftest import _empty_tables, image_bytes

ROLES = ["clinician", "other_clinician", "specialist", "other_specialist", "coordinator",
         "admin", "anonymous"]


@pytest.fixture()
def build_case(world: dict[str, Any], make_consult: Callable[..., Any],
               make_clinic: Callable[..., Any], make_user: Callable[..., Any]
               ) -> Callable[..., dict]:
    """Return build(state, fresh=False): the world plus a consult in that state and its objects.

    States: draft, offered (to world["specialist"]), accepted (by world["specialist"], with a
    case photo and a clinician's note carrying a photo), answered. `fresh` empties every table
    and makes a new world first.
    """

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
        if state in ("accepted", "answered"):
            accept_consult(consult, specialist)
            note = add_note(consult, clinician, "Temperature 39.2 this morning.",
                            [Upload(io.BytesIO(image_bytes()), "chart.jpg")])
            db.session.commit()
            objects["note"] = note
            objects["note_attachment"] = note.attachments[0]
        if state == "answered":
            add_note(consult, specialist, "Probably viral.", answer=True)
            db.session.commit()
        return objects

    return build
