"""Deeper than the URL sweep: every form each demo role is shown is posted filled as the page
fills it, with one field at a time replaced by something hostile, so the input reaches the
services behind the form's first checks. Never a 5xx."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from telehealth.cli import DEMO_PASSWORD
from tests.robustness.test_hostile_inputs import crashes
from tests.weight.demo import DEMO_ROLES, seed_world, walk

HOSTILE = ("99999999999999999999", "-1", "x" * 70_000, "abc", "\x00", "2026-02-30",
           "1e309", " ")
SAMPLE = {"number": "3", "date": "2030-01-01", "datetime-local": "2030-01-01T10:00",
          "time": "14:00", "email": "someone@example.org", "checkbox": "y", "radio": None}


class _Forms(HTMLParser):
    """The POST forms of a page: their action and a payload as the browser would send it."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._current: dict[str, str] | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._current = {}
            self.forms.append((a.get("action", ""), self._current))
        elif self._current is None or not a.get("name"):
            return
        elif tag == "input" and a.get("type") not in ("file", "submit", "button"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and a["name"] in self._current:
                return
            self._current[a["name"]] = a.get("value") or SAMPLE.get(kind) or "Test text"
        elif tag == "textarea":
            self._current[a["name"]] = "Some text."
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and self._select not in self._current \
                and a.get("value"):
            self._current[self._select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "select":
            self._select = None


def forms_in(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


@pytest.mark.parametrize("who", list(DEMO_ROLES))
def test_every_form_with_one_hostile_field_never_gets_a_5xx(app, who, caplog):
    seed_world(photo_size=(320, 240))
    client = app.test_client()
    client.post("/login", data={"email": DEMO_ROLES[who], "password": DEMO_PASSWORD})
    pages: dict[str, str] = {}

    def fetch(path: str) -> tuple[int, str]:
        response = client.get(path)
        html = response.get_data(as_text=True) if response.mimetype == "text/html" else ""
        response.close()
        pages[path] = html
        return response.status_code, html

    walk(fetch, start=("/", "/account/preferences", "/roster", "/conferences/new",
                       "/admin/users/new", "/admin/clinics/new", "/surveillance/syndromes"),
         limit=40)
    problems = []
    seen: set[str] = set()
    for page, html in pages.items():
        for action, payload in forms_in(html):
            target = action or page
            if not target.startswith("/") or target.startswith(("/logout", "/language")) \
                    or target in seen:
                continue
            seen.add(target)
            for name in [n for n in payload if n != "csrf_token"]:
                for value in HOSTILE:
                    response = client.post(target, data={**payload, name: value})
                    if response.status_code >= 500:
                        problems.append(f"{who} {target} {name}={value[:20]!r} -> "
                                        f"{response.status_code}")
                    response.close()
    assert len(seen) >= 2, pages.keys()
    assert problems == [], "\n".join([*sorted(crashes(caplog)), *problems[:40]])
