"""Notes keep their language; people translate, verify and ask; readers see their language."""

from __future__ import annotations

from typing import Any

import pytest

from telehealth.accounts.models import Role
from telehealth.errors import PermissionDenied
from telehealth.extensions import db
from telehealth.notes.models import Note
from telehealth.notes.services import add_note, amend_note
from telehealth.translation import services
from telehealth.translation.models import (
    NoteTranslation,
    TranslationMethod,
    TranslationRequest,
    TranslationState,
)
from tests.i18n.helpers import browser

FRENCH = "L'enfant a de la fièvre et une toux sèche depuis cinq jours."
ENGLISH = "The child has had a fever and a dry cough for five days."


def _note(consult: Any, author: Any, body: str = FRENCH, **kwargs: Any) -> Note:
    note = add_note(consult, author, body, **kwargs)
    db.session.commit()
    return note


def test_language_is_detected_or_chosen(case):
    detected = _note(case["consult"], case["clinician"])
    assert (detected.language, detected.language_detected) == ("fr", True)
    chosen = _note(case["consult"], case["clinician"], "Karibu sana", language="sw")
    assert (chosen.language, chosen.language_detected) == ("sw", False)


def test_note_form_takes_a_language_and_refuses_unknown_ones(app, case):
    client = browser(app, case["clinician"], "fr")
    consult_id = case["consult"].id
    response = client.post(f"/consults/{consult_id}/notes",
                           data={"body": "Habari za asubuhi, mgonjwa anaendelea vizuri.",
                                 "language": ""})
    assert response.status_code == 302
    assert db.session.scalars(db.select(Note)).one().language == "sw"
    response = client.post(f"/consults/{consult_id}/notes",
                           data={"body": "Texte", "language": "klingon"})
    assert response.status_code == 400
    assert "Choix invalide" in response.text
    assert "Texte" in response.text  # what was typed comes back


def test_author_corrects_the_language(app, case):
    note = _note(case["consult"], case["clinician"], "OK merci, noted.")
    response = browser(app, case["specialist"]).post(f"/notes/{note.id}/language",
                                                     data={"language": "en"})
    assert response.status_code == 403
    response = browser(app, case["clinician"], "fr").post(f"/notes/{note.id}/language",
                                                          data={"language": "fr"})
    assert response.status_code == 302
    db.session.refresh(note)
    assert (note.language, note.language_detected) == ("fr", False)


def test_reader_sees_a_labelled_translation_and_the_original(app, case, make_user):
    note = _note(case["consult"], case["clinician"])
    consult_id = case["consult"].id
    page = browser(app, case["specialist"]).get(f"/consults/{consult_id}").text
    # Nobody translated yet: the original, and a way to ask for a translation.
    assert FRENCH.replace("'", "&#39;") in page
    assert "Ask for a translation into English" in page
    assert "Machine-translate" not in page  # no provider configured

    # Dr Bilingual is not on the case: he may not translate it.
    with pytest.raises(PermissionDenied):
        services.add_translation(note, case["bilingual"], "en", ENGLISH)

    # The clinician knows both languages and translates her own note.
    client = browser(app, case["clinician"], "fr")
    response = client.post(f"/notes/{note.id}/translations",
                           data={"language": "en", "text": ENGLISH})
    assert response.status_code == 302
    translation = db.session.scalars(db.select(NoteTranslation)).one()
    assert (translation.method, translation.state) == (TranslationMethod.HUMAN,
                                                       TranslationState.DRAFT)
    db.session.refresh(note)
    assert note.current.body == FRENCH  # the original never changes

    page = browser(app, case["specialist"]).get(f"/consults/{consult_id}").text
    assert ENGLISH in page
    assert f"Translated by {case['clinician'].name} from the original in French" in page
    assert "not verified" in page
    assert "Show the original (French)" in page
    assert 'class="pre note-original" lang="fr"' in page

    # She cannot verify her own translation; a coordinator who reads both can.
    with pytest.raises(PermissionDenied):
        services.verify_translation(translation, case["clinician"])
    coordinator = case["coordinator"]
    response = browser(app, coordinator).post(f"/translations/{translation.id}/verify")
    assert response.status_code == 302
    page = browser(app, case["specialist"]).get(f"/consults/{consult_id}").text
    assert f"verified by {coordinator.name}" in page
    assert browser(app, coordinator).post(
        f"/translations/{translation.id}/verify").status_code == 409


def test_ask_queue_and_translate_as_a_volunteer(app, case, make_user):
    answer = _note(case["consult"], case["specialist"], ENGLISH)
    volunteer = make_user(Role.SPECIALIST, languages=("en", "fr"), name="Vera Volunteer")
    only_spanish = make_user(Role.SPECIALIST, languages=("es", "en"), name="Solo Spanish")
    for person in (volunteer, only_spanish):
        person.is_translator = True
    db.session.commit()

    # Before anyone asks, the volunteer cannot even read the note.
    assert browser(app, volunteer).post(f"/notes/{answer.id}/translations", data={
        "language": "fr", "text": "x"}).status_code == 404

    clinician = browser(app, case["clinician"], "fr")
    page = clinician.get(f"/consults/{case['consult'].id}").text
    assert "Demander une traduction en français" in page
    assert clinician.post(f"/notes/{answer.id}/translation-requests",
                          data={"language": "fr"}).status_code == 302
    assert "Traduction en français demandée" in clinician.get(
        f"/consults/{case['consult'].id}").text

    queue = browser(app, volunteer).get("/translations/queue").text
    assert ENGLISH in queue
    assert ENGLISH not in browser(app, only_spanish).get("/translations/queue").text

    french = "L'enfant a de la fièvre et une toux sèche depuis cinq jours (réponse)."
    response = browser(app, volunteer).post(f"/notes/{answer.id}/translations",
                                            data={"language": "fr", "text": french})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/translations/queue")
    request = db.session.scalars(db.select(TranslationRequest)).one()
    assert request.fulfilled_at is not None
    assert ENGLISH not in browser(app, volunteer).get("/translations/queue").text

    page = clinician.get(f"/consults/{case['consult'].id}").text
    assert french.replace("'", "&#39;") in page
    # (Translated messages are trusted markup; only their placeholders are escaped.)
    assert "Traduit par Vera Volunteer de l'original en anglais" in page
    assert "Voir l'original (anglais)" in page


def test_translation_of_an_earlier_version_is_not_shown_as_current(app, case):
    note = _note(case["consult"], case["clinician"])
    services.add_translation(note, case["clinician"], "en", ENGLISH)
    amend_note(note, case["clinician"], FRENCH + " Elle vomit aussi.")
    db.session.commit()
    page = browser(app, case["specialist"]).get(f"/consults/{case['consult'].id}").text
    assert ENGLISH not in page
    assert "Ask for a translation into English" in page


def test_only_coordinators_grant_the_translator_role(app, case):
    target = case["specialist"]
    clinician = browser(app, case["clinician"])
    assert clinician.post("/translators", data={"user_id": target.id,
                                                "granted": "1"}).status_code == 403
    coordinator = browser(app, case["coordinator"])
    assert target.name in coordinator.get("/translators").text
    response = coordinator.post("/translators", data={"user_id": target.id, "granted": "1"})
    assert response.status_code == 302
    db.session.refresh(target)
    assert target.is_translator
    coordinator.post("/translators", data={"user_id": target.id, "granted": "0"})
    db.session.refresh(target)
    assert not target.is_translator
    assert coordinator.post("/translators", data={"user_id": 999999}).status_code == 404


def test_bad_input_gets_a_clear_answer(app, case):
    note = _note(case["consult"], case["clinician"])
    client = browser(app, case["clinician"], "fr")
    response = client.post(f"/notes/{note.id}/translations", data={"language": "en",
                                                                    "text": "   "})
    assert response.status_code == 400
    response = client.post(f"/notes/{note.id}/translations", data={"language": "fr",
                                                                    "text": "Même langue"})
    assert response.status_code == 403
    response = client.post(f"/notes/{note.id}/translation-requests", data={"language": "fr"})
    assert response.status_code == 400
    assert "La note est déjà dans cette langue." in response.text
    assert client.post("/notes/999999/translations", data={"language": "en",
                                                           "text": "x"}).status_code == 404
    assert db.session.scalars(db.select(NoteTranslation)).all() == []


def test_author_marks_a_note_as_needing_a_translation(app, case, make_user):
    note = _note(case["consult"], case["clinician"])
    volunteer = make_user(Role.SPECIALIST, languages=("fr", "pt"), name="Paulo Volunteer")
    volunteer.is_translator = True
    db.session.commit()
    client = browser(app, case["clinician"], "fr")
    page = client.get(f"/consults/{case['consult'].id}").text
    assert "Signaler qu'une traduction est nécessaire" in page
    assert client.post(f"/notes/{note.id}/translation-requests",
                       data={"language": "pt"}).status_code == 302
    assert FRENCH.replace("'", "&#39;") in browser(app, volunteer).get(
        "/translations/queue").text
    # Asked once; the language is no longer offered.
    page = client.get(f"/consults/{case['consult'].id}").text
    offered = page[page.index('class="request-translation"'):]
    offered = offered[:offered.index("</details>")]
    assert '<option value="en">' in offered and '<option value="pt">' not in offered
