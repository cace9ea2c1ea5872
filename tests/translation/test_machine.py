"""Optional machine translation through a LibreTranslate-compatible HTTP service."""

from __future__ import annotations

import pytest

from telehealth.extensions import db
from telehealth.notes.services import add_note
from telehealth.translation.machine import LibreTranslateProvider, MachineTranslationError
from telehealth.translation.models import NoteTranslation, TranslationMethod, TranslationState
from tests.i18n.helpers import browser
from tests.translation.conftest import FakeLibreTranslate

FRENCH = "L'enfant a de la fièvre depuis cinq jours."


def test_provider_speaks_the_libretranslate_protocol():
    with FakeLibreTranslate() as fake:
        provider = LibreTranslateProvider(fake.url + "/", api_key="k")
        assert provider.translate("Bonjour", "fr", "en-GB") == "[en] Bonjour"
        assert fake.requests == [{"path": "/translate", "q": "Bonjour", "source": "fr",
                                  "target": "en", "format": "text", "api_key": "k"}]
        fake.fail = True
        with pytest.raises(MachineTranslationError):
            provider.translate("Bonjour", "fr", "en")


def test_unreachable_provider_is_an_error():
    with FakeLibreTranslate() as fake:
        url = fake.url
    with pytest.raises(MachineTranslationError):
        LibreTranslateProvider(url, timeout=2).translate("Bonjour", "fr", "en")


def test_machine_translation_is_offered_and_marked_unverified(app, case, libretranslate):
    note = add_note(case["consult"], case["clinician"], FRENCH)
    db.session.commit()
    reader = browser(app, case["specialist"])
    page = reader.get(f"/consults/{case['consult'].id}").text
    assert "Machine-translate into English" in page

    response = reader.post(f"/notes/{note.id}/machine-translation", data={"language": "en"})
    assert response.status_code == 302
    translation = db.session.scalars(db.select(NoteTranslation)).one()
    assert translation.method == TranslationMethod.MACHINE
    assert translation.state == TranslationState.DRAFT
    assert translation.text == f"[en] {FRENCH}"

    page = reader.get(f"/consults/{case['consult'].id}").text
    assert "Machine translation from the original in French" in page
    assert "not verified" in page
    assert "Show the original (French)" in page
    # Someone who knows both languages can still write a proper translation over it.
    page = browser(app, case["clinician"], "en").get(f"/consults/{case['consult'].id}").text
    assert "Translate into English" not in page  # her own note is in her reading language


def test_provider_failure_saves_nothing(app, case, libretranslate):
    # The request only hands the job over (the service may be slow); a failing service
    # leaves the note untranslated, and the reader can ask again.
    note = add_note(case["consult"], case["clinician"], FRENCH)
    db.session.commit()
    libretranslate.fail = True
    response = browser(app, case["specialist"]).post(
        f"/notes/{note.id}/machine-translation", data={"language": "en"})
    assert response.status_code == 302
    assert len(libretranslate.requests) == 1
    assert db.session.scalars(db.select(NoteTranslation)).all() == []


def test_without_provider_the_feature_is_absent(app, case):
    note = add_note(case["consult"], case["clinician"], FRENCH)
    db.session.commit()
    reader = browser(app, case["specialist"])
    assert "Machine-translate" not in reader.get(f"/consults/{case['consult'].id}").text
    response = reader.post(f"/notes/{note.id}/machine-translation", data={"language": "en"})
    assert response.status_code == 503
