"""Acceptance 4: the hub's recommendation reaches the originating consult, translated."""

from __future__ import annotations

from typing import Any

import pytest

from telehealth.conferences import services
from telehealth.errors import Conflict, PermissionDenied
from telehealth.extensions import db
from telehealth.translation.models import (
    NoteTranslation,
    TranslationMethod,
    TranslationState,
)
from tests.conferences.test_cases import _approved, _case
from tests.conftest import PASSWORD

ADVICE = "Start cotrimoxazole prophylaxis and recheck the CD4 count in three months."
TRADUCTION = "Commencer la prophylaxie au cotrimoxazole et recontrôler les CD4 dans trois mois."


def test_a_recommendation_appears_on_the_consult_in_the_clinicians_language(
        app: Any, conference: dict[str, Any]) -> None:
    case = _approved(conference)
    recommendation = services.add_recommendation(case, conference["specialist"], ADVICE,
                                                 language="en")
    db.session.commit()
    assert recommendation.note_id is not None
    clinician = conference["clinician"]
    client = app.test_client()
    client.post("/login", data={"email": clinician.email, "password": PASSWORD})
    page = client.get(f"/consults/{case.consult_id}").text
    assert ADVICE in page and "HIV care in rural clinics" in page

    # Once a French translation exists, the French-reading clinician reads that.
    db.session.add(NoteTranslation(
        note_id=recommendation.note_id, revision_id=recommendation_revision(recommendation),
        language="fr", text=TRADUCTION, method=TranslationMethod.HUMAN,
        state=TranslationState.VERIFIED, created_by_id=conference["specialist"].id))
    clinician.locale = "fr"
    db.session.commit()
    page = client.get(f"/consults/{case.consult_id}").text
    assert TRADUCTION in page


def recommendation_revision(recommendation: Any) -> int:
    from telehealth.notes.models import Note

    note = db.session.get(Note, recommendation.note_id)
    assert note is not None
    return note.current.id


def test_only_the_hub_recommends_and_only_on_approved_cases(conference: dict[str, Any]) -> None:
    case = _case(conference)
    with pytest.raises(Conflict):
        services.add_recommendation(case, conference["specialist"], ADVICE)
    approved = _approved(conference)
    with pytest.raises(PermissionDenied):
        services.add_recommendation(approved, conference["clinician"], ADVICE)
