"""Every page renders in all six languages; French and Arabic pages hold no English leftovers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from telehealth.accounts.models import User
from telehealth.extensions import db
from telehealth.i18n.catalogs import TRANSLATIONS_DIR, read_catalog
from tests.i18n.conftest import LANGUAGES
from tests.i18n.helpers import FreshClient, browser

# (who is signed in, URL) for every page; build_urls() fills in the ids.
PAGE_RULES = {
    "/login": None,
    "/": "clinician",
    "/account/password": "clinician",
    "/account/preferences": "specialist",
    "/account/two-factor": "admin",
    # Shown between the password and the code: a browser that passed only the password step.
    "/login/code": "password_only",
    "/consults/new": "clinician",
    "/consults/<int:consult_id>": "clinician",
    "/consults/<int:consult_id>/diagnoses": "specialist",
    "/translations/queue": "translator",
    "/translators": "coordinator",
    "/admin/users": "admin",
    "/admin/users/new": "admin",
    "/admin/users/<int:user_id>": "admin",
    "/admin/clinics": "admin",
    "/admin/clinics/new": "admin",
    "/admin/outbox": "admin",
    "/consults/<int:consult_id>/matching": "coordinator",
    "/roster": "coordinator",
    "/roster/<int:user_id>": "specialist",  # their own profile
    "/roster/invite": "coordinator",
    "/roster/import": "coordinator",
    "/roster/load": "coordinator",
    "/escalations": "coordinator",
    "/signup/<token>": None,
    "/consults/<int:consult_id>/call": "clinician",
    "/call/check": "specialist",
    "/situation": "coordinator",
    "/surveillance": "coordinator",
    "/surveillance/weekly-report": "clinician",
    "/surveillance/syndromes": "admin",
    "/surveillance/alerts/<int:alert_id>": "coordinator",
    "/surveillance/bulletin/<int:area_id>": "coordinator",
    "/bulletins/<share_token>": None,
    "/admin/areas": "admin",
    "/conferences": "clinician",
    "/conferences/new": "coordinator",
    "/conferences/<int:series_id>": "coordinator",
    "/conferences/sessions/<int:session_id>": "clinician",
    "/conferences/sessions/<int:session_id>/cases/new": "clinician",
    "/conferences/cases/<int:case_id>": "specialist",
    "/conferences/sessions/<int:session_id>/attendance": "coordinator",
    "/conferences/sessions/<int:session_id>/certificate": "clinician",
    "/conferences/sessions/<int:session_id>/room": "clinician",
}
# More views of the same templates as other people see them.
EXTRA_PAGES = [
    ("specialist", "/"),
    ("coordinator", "/"),
    ("specialist", "/consults/{consult_id}"),
    ("specialist", "/consults/{consult_id}/diagnoses?q=pneumonia"),
    ("clinician", "/consults/999999"),  # the error page
    ("coordinator", "/roster/{user_id}"),  # with the coordinator's buttons
    ("guest", "/consults/{consult_id}/call"),  # after opening the invitation link
    ("clinician", "/surveillance"),  # their clinic's counts only
    ("clinician", "/conferences/{series_id}"),  # a participant: no coordinator's forms
    ("clinician", "/conferences/cases/{draft_id}"),  # the presenter's draft, flags and all
    ("coordinator", "/conferences/sessions/{session_id}"),
    ("specialist", "/conferences/sessions/{session_id}/room"),  # a moderator: slides, actions
]
# Not pages: JSON, files (attachments, the licence scan, the roster as CSV), the static folder,
# and the guest's invitation link (a redirect to the call page: the "guest" browser opens it).
NOT_PAGES = re.compile(r"^/(api/|static/|attachments/)|^/roster/(export\.csv"
                       r"|<int:user_id>/credential/document)$"
                       r"|^/call/invite/<token>$"
                       r"|^/situation/(api|api/<key>|<key>\.csv)$"
                       r"|^/surveillance/export/"
                       r"|^/consults/<int:consult_id>/call/where$"  # JSON for the call page
                       r"|^/conferences/(join/<token>|<int:series_id>/attendance\.csv"
                       r"|case-images/<int:image_id>|sessions/<int:session_id>/room/where"
                       r"|slides/<int:slide_id>/<any\(full, ?preview\):size>"
                       r"|static/<path:filename>)$")


def build_urls(world: dict[str, Any]) -> list[tuple[str, str]]:
    ids = {"consult_id": world["consult"].id, "user_id": world["specialist"].id,
           "token": world["invite_token"], "series_id": world["conf_series"].id,
           "session_id": world["conf_session"].id, "case_id": world["conf_case"].id,
           "draft_id": world["conf_draft"].id, **world.get("page_ids", {})}
    pages = []
    for rule, who in PAGE_RULES.items():
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m.group(1)]), rule)
        pages.append((who, url))
    for who, url in EXTRA_PAGES:
        pages.append((who, url.format(**ids)))
    return pages


def test_every_page_is_listed(app):
    """A new page must be added to PAGE_RULES, so that it is rendered in every language."""
    get_rules = {r.rule for r in app.url_map.iter_rules()
                 if "GET" in (r.methods or ()) and not NOT_PAGES.match(r.rule)}
    assert get_rules - set(PAGE_RULES) == set(), "add these pages to PAGE_RULES"


class _Text(HTMLParser):
    """The text a reader sees (and attribute texts they hear or hover), tags stripped."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("aria-label", "title", "placeholder") and value:
                self.chunks.append(value)
            if name == "value" and tag == "input" and value and ("type", "submit") in attrs:
                self.chunks.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.chunks.append(" ".join(data.split()))


def visible_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.chunks


def english_messages(language: str) -> list[str]:
    """English source texts whose translation differs: finding one on a page is a leftover."""
    catalog = read_catalog(TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po", language)
    found = []
    for message in catalog:
        if not message.id:
            continue
        for source in (message.id if isinstance(message.id, tuple) else (message.id,)):
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if source in strings:
                continue  # the same word in both languages ("Telehealth", "Total")
            # The fixed words around a placeholder: "Consults of %(clinic)s" -> "Consults of"
            for part in re.split(r"%\(\w+\)[sd]|%[sd]", source):
                part = part.strip(" .,:;·()")
                # A word the translation keeps ("minutes" in French) is not a leftover.
                if len(part) >= 4 and part[0].isalpha() \
                        and not any(part in string for string in strings if string):
                    found.append(part)
    return found


def client_for(app, who: str, world: dict[str, Any], language: str) -> FreshClient:
    """A fresh browser for one person (nobody when `who` is empty; "guest": nobody, but with
    the call's invitation link opened), asking for `language`."""
    if who == "guest":
        guest = browser(app, None, language)
        assert guest.get(f"/call/invite/{world['call_token']}").status_code == 302
        return guest
    return browser(app, world[who] if who else None, language)


def set_language(world: dict[str, Any], language: str) -> None:
    for person in ("clinician", "specialist", "coordinator", "admin", "translator"):
        world[person].locale = language
    db.session.commit()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_renders(app, babel_world, language):
    set_language(babel_world, language)
    clients: dict[str, Any] = {}
    for who, url in build_urls(babel_world):
        if who not in clients:
            clients[who] = client_for(app, who, babel_world, language)
        response = clients[who].get(url)
        expected = 404 if url.endswith("/999999") else 200
        assert response.status_code == expected, (url, response.text[:500])
        html = response.text
        assert f'<html lang="{language}" dir="{"rtl" if language == "ar" else "ltr"}">' in html
        assert 'class="inline language-switcher"' in html, url


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_no_english_leftovers(app, babel_world, language):
    set_language(babel_world, language)
    leftovers = english_messages(language)
    assert len(leftovers) > 100  # the catalog is really there
    sample = [("clinician", "/"), ("clinician", "/consults/new"),
              ("clinician", "/consults/{consult_id}"), ("specialist", "/consults/{consult_id}"),
              ("specialist", "/account/preferences"), ("translator", "/translations/queue"),
              ("coordinator", "/translators"), ("admin", "/admin/users"),
              ("clinician", "/consults/{consult_id}/call"), ("specialist", "/call/check"),
              ("", "/login")]
    # Data a person typed or a code list is not interface text.
    # (Tell City, Indiana: a time zone's place name that CLDR leaves as it is.)
    data = {babel_world["consult"].specialty.name, "Goma", "Maputo", "Tell City"} | {
        person.name for person in babel_world.values() if isinstance(person, User)}
    clients: dict[str, Any] = {}
    for who, url in sample:
        if who not in clients:
            clients[who] = client_for(app, who, babel_world, language)
        url = url.format(consult_id=babel_world["consult"].id)
        html = clients[who].get(url).text
        page = "\n".join(visible_text(html))
        for value in data:
            page = page.replace(value, "")
        found = sorted({m for m in leftovers if re.search(rf"(?<!\w){re.escape(m)}(?!\w)",
                                                          page)})
        assert not found, f"{url} in {language} shows English: {found}"


def test_form_errors_are_translated_in_swahili(app, babel_world):
    """WTForms has no Swahili; its messages come from our catalog."""
    set_language(babel_world, "sw")
    client = client_for(app, "clinician", babel_world, "sw")
    html = client.post("/consults/new", data={"submit": "1"}).text
    assert "This field is required." not in html
    assert "Sehemu hii inahitajika." in html


def test_arabic_mirrors_the_layout(app, babel_world):
    set_language(babel_world, "ar")
    client = client_for(app, "clinician", babel_world, "ar")
    html = client.get(f"/consults/{babel_world['consult'].id}").text
    assert 'dir="rtl"' in html
    css = (Path(__file__).resolve().parents[2] / "telehealth" / "static" / "style.css").read_text()
    # Physical sides would not flip with dir="rtl"; logical properties do.
    physical = re.findall(r"(?:margin|padding|border)-(?:left|right)\b|text-align:\s*(?:left|right)"
                          r"|float:\s*(?:left|right)", css)
    assert physical == []
    assert "margin-inline" in css and "text-align:start" in css
