"""A small multilingual world: a French clinician, an English specialist, notes and codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyotp
import pytest

from telehealth.accounts.models import Role, User
from telehealth.consults.models import ConsultStatus
from telehealth.diagnoses.services import add_diagnosis
from telehealth.extensions import db
from telehealth.notes.services import add_note
from telehealth.roster.services import invite_specialist
from telehealth.translation.services import add_translation, request_translation
from telehealth.video.services import create_invite
from tests.conftest import take_consult
from tests.security.conftest import _conference_objects
from tests.surveillance.helpers import surveillance_pages

LANGUAGES = ["en", "fr", "es", "pt", "ar", "sw"]


@pytest.fixture()
def babel_world(world: dict[str, Any], make_consult: Callable[..., Any],
                make_user: Callable[..., User]) -> dict[str, Any]:
    """The `world`, plus an accepted consult with a French note translated into English, a
    guest's link to its call (`call_token`), a sign-up link (`invite_token`) and a person
    with two-step sign-in (`password_only`)."""
    clinician = world["clinician"]
    clinician.locale = "fr"
    specialist = world["specialist"]
    specialist.locale = "en"
    consult = make_consult(clinician, presenting_problem="Fièvre et toux depuis cinq jours.")
    take_consult(consult, specialist)
    note = add_note(consult, clinician, "L'enfant a une forte fièvre et tousse depuis cinq "
                    "jours, sans difficulté respiratoire.")
    answer = add_note(consult, specialist, "This looks like a viral infection. Give "
                      "paracetamol and plenty of fluids.")
    add_translation(note, specialist, "en", "The child has a high fever and has been coughing "
                    "for five days, without difficulty breathing.")
    request_translation(answer, clinician, "fr")
    add_diagnosis(consult, specialist, "J06.9")
    translator = make_user(Role.SPECIALIST, languages=("en", "fr"), name="Tina Translator")
    translator.is_translator = True
    _invite, invite_token = invite_specialist("invited@example.org", world["coordinator"])
    _guest, call_token = create_invite(consult, clinician, "Interpreter")
    # Signing in with the password only starts the sign-in: the code page comes next.
    password_only = make_user(Role.CLINICIAN, clinic=world["clinic"], name="Carla Code")
    password_only.totp_secret = pyotp.random_base32()
    db.session.commit()
    assert consult.status == ConsultStatus.ACCEPTED
    conference = _conference_objects(world, consult)  # a case conference on the consult
    return {**world, **conference, "consult": consult, "note": note, "answer": answer,
            "translator": translator, "invite_token": invite_token, "call_token": call_token,
            "password_only": password_only,
            "page_ids": surveillance_pages(world)}
