"""In a real browser: a French clinician and an English specialist work one case together."""

from __future__ import annotations

from typing import Any

import pytest

from telehealth.accounts.models import Role
from telehealth.extensions import db
from tests.conftest import ARTIFACTS, sign_in

pytestmark = pytest.mark.browser

SCREENSHOTS = ARTIFACTS / "screenshots"

FRENCH_NOTE = ("L'enfant a une forte fièvre depuis cinq jours et une éruption sur le tronc. "
               "Nous n'avons pas de test pour la rougeole.")
ENGLISH_TRANSLATION = ("The child has had a high fever for five days and a rash on the trunk. "
                       "We have no measles test.")
ENGLISH_REPLY = ("This is most likely measles. Give vitamin A today and tomorrow, and isolate "
                 "the child from other patients.")
FRENCH_OF_REPLY = ("Il s'agit très probablement de la rougeole. Donnez de la vitamine A "
                   "aujourd'hui et demain, et isolez l'enfant des autres patients.")


def _sign_in(browser: Any, base: str, email: str) -> Any:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, base, email)
    return page


def test_french_clinician_and_english_specialist(live_server, browser, make_clinic,
                                                 make_user, make_specialty):
    base = live_server
    infectious = make_specialty("infectious", "Infectious diseases")
    clinic = make_clinic("Centre de santé Goma", languages=("fr", "en"))
    clinician = make_user(Role.CLINICIAN, clinic=clinic, name="Marie Kabila", locale="fr",
                          timezone="Africa/Kinshasa", languages=("fr", "en"))
    specialist = make_user(Role.SPECIALIST, name="Dr Amina Okafor", locale="en",
                           timezone="America/Toronto", specialties=("infectious",),
                           languages=("en", "fr"))
    db.session.commit()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    # The clinician's interface is French; she asks for a consult and writes a note.
    marie = _sign_in(browser, base, clinician.email)
    assert marie.locator("html").get_attribute("lang") == "fr"
    marie.click("text=Nouvelle consultation")
    marie.fill("#patient_ref", "GOMA-17")
    marie.fill("#patient_age_years", "7")
    marie.select_option("#patient_sex", "male")
    marie.fill("#presenting_problem", "Fièvre et éruption cutanée depuis cinq jours.")
    marie.fill("#question", "Rougeole ou autre chose ?")
    # A known specialty is named in the reader's language.
    marie.select_option("#specialty", label="Maladies infectieuses")
    assert infectious.code == "infectious"
    marie.click("#submit")
    marie.wait_for_selector("#status")
    consult_url = marie.url
    marie.fill("#body", FRENCH_NOTE)
    marie.click("#note-form #submit")
    marie.wait_for_selector(".note-body")
    assert "Langue d'origine" not in marie.inner_text("#notes")  # her own language
    marie.screenshot(path=str(SCREENSHOTS / "i18n-consult-fr.png"), full_page=True)

    # The specialist reads English; she takes the case and translates the note.
    amina = _sign_in(browser, base, specialist.email)
    assert amina.locator("html").get_attribute("lang") == "en"
    amina.goto(consult_url)
    amina.click("#accept")
    amina.wait_for_selector("text=You have taken this consult.")
    note = amina.locator("article.note").first
    assert "Original language: French (detected)" in note.inner_text()
    note.locator("details.translate summary").click()
    note.locator("details.translate textarea").fill(ENGLISH_TRANSLATION)
    note.locator("details.translate button").click()
    amina.wait_for_selector("text=Your translation is saved.")
    note = amina.locator("article.note").first
    assert ENGLISH_TRANSLATION in note.locator(".note-body").inner_text()
    assert "Translated by Dr Amina Okafor from the original in French" in note.inner_text()
    # The original is one click away.
    assert not note.locator(".note-original").is_visible()
    note.locator("details.original summary").click()
    assert FRENCH_NOTE in note.locator(".note-original").inner_text()

    amina.fill("#body", ENGLISH_REPLY)
    amina.click("#note-form #submit")
    amina.wait_for_selector("text=Your note is saved.")

    # Back to the clinician: the reply is in English; she adds her French translation.
    marie.goto(consult_url)
    reply = marie.locator("article.note").nth(1)
    assert ENGLISH_REPLY in reply.locator(".note-body").inner_text()
    assert "Langue d'origine : anglais" in reply.inner_text()
    reply.locator("details.translate summary").click()
    reply.locator("details.translate textarea").fill(FRENCH_OF_REPLY)
    reply.locator("details.translate button").click()
    marie.wait_for_selector("text=Votre traduction est enregistrée.")
    reply = marie.locator("article.note").nth(1)
    assert FRENCH_OF_REPLY in reply.locator(".note-body").inner_text()
    assert "Traduit par Marie Kabila de l'original en anglais" in reply.inner_text()
    reply.locator("details.original summary").click()
    assert ENGLISH_REPLY in reply.locator(".note-original").inner_text()
    marie.screenshot(path=str(SCREENSHOTS / "i18n-consult-fr-translated.png"), full_page=True)

    # Arabic, chosen with the switcher: right to left, and the layout mirrors.
    marie.select_option("#switch-language", "ar")
    marie.click(".language-switcher button")
    marie.wait_for_selector("html[dir=rtl]")
    assert marie.locator("html").get_attribute("lang") == "ar"
    assert marie.evaluate("getComputedStyle(document.body).direction") == "rtl"
    brand = marie.locator(".brand").bounding_box()
    first_link = marie.locator("nav a").first.bounding_box()
    assert brand["x"] > first_link["x"]  # the brand sits on the right in Arabic
    marie.screenshot(path=str(SCREENSHOTS / "i18n-consult-ar.png"), full_page=True)
    db.session.refresh(clinician)
    assert clinician.locale == "ar"
