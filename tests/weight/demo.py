"""The demo world (`seed-demo`) with a few consults in it, and a walk over the pages a
person's role links to."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select

from telehealth.accounts.models import Specialty, User
from telehealth.cli import seed_demo
from telehealth.consults.models import ConsultMode, Sex, Urgency
from telehealth.consults.services import ConsultInput, Upload, create_consult
from telehealth.extensions import db
from telehealth.notes.services import add_note
from tests.conftest import take_consult
from tests.robustness.photos import phone_jpeg

DEMO_ROLES = {
    "clinician": "marie.kabila@example.org",
    "specialist": "claire.martin@example.org",
    "coordinator": "coordinator@example.org",
    "admin": "admin@example.org",
}
# Not pages: files, JSON, sign-out, the roster as CSV, a guest's invitation link.
SKIP = re.compile(r"^/(logout|attachments/|static/|api/|call/invite/|socket\.io/)"
                  r"|\.csv$|/credential/document$|^#|^mailto:")


def user(email: str) -> User:
    found = db.session.scalar(select(User).where(User.email == email))
    assert found is not None, email
    return found


def seed_world(photo_size: tuple[int, int] = (1600, 1200)) -> dict[str, Any]:
    """`seed-demo`, then consults as a clinic would make them: one taken and answered in part
    with a photo, one waiting for an offer, one draft."""
    seed_demo()
    db.session.commit()
    marie, claire = user(DEMO_ROLES["clinician"]), user(DEMO_ROLES["specialist"])
    cardiology = db.session.scalar(select(Specialty).where(Specialty.code == "cardiology"))

    def consult(submit: bool, files: list[Upload], question: str) -> Any:
        data = ConsultInput(
            patient_ref="GOMA-17", patient_age_years=None, patient_age_band="1-4y",
            patient_sex=Sex.MALE, presenting_problem="Fièvre et éruption depuis cinq jours.",
            history="Pas de voyage.", question=question, specialty=cardiology,
            urgency=Urgency.URGENT, mode=ConsultMode.WRITTEN, languages=["fr", "sw"])
        made = create_consult(marie, data, files, submit=submit)
        db.session.commit()
        return made

    taken = consult(True, [Upload(io.BytesIO(phone_jpeg(photo_size)), "éruption.jpg")],
                    "Rougeole ?")
    take_consult(taken, claire)
    add_note(taken, claire, "Probablement virale ; surveillez la fièvre.", language="fr")
    db.session.commit()
    waiting = consult(True, [], "Souffle cardiaque ?")
    draft = consult(False, [], "Brouillon")
    return {"taken": taken, "waiting": waiting, "draft": draft}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.links.append(href)


def links_in(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def page_kind(path: str) -> str:
    """/consults/12 and /consults/15 are the same page; one visit is enough."""
    return re.sub(r"\d+", "N", path.split("#")[0])


def walk(fetch: Callable[[str], tuple[int, str]], start: Iterable[str] = ("/",),
         limit: int = 40) -> dict[str, int]:
    """Breadth-first over the links each page shows (one of each kind); path -> status."""
    seen_kinds: set[str] = set()
    queue = list(start)
    visited: dict[str, int] = {}
    while queue and len(visited) < limit:
        path = queue.pop(0).split("#")[0]
        if not path.startswith("/") or SKIP.search(path) or page_kind(path) in seen_kinds:
            continue
        seen_kinds.add(page_kind(path))
        status, html = fetch(path)
        visited[path] = status
        queue.extend(link for link in links_in(html) if link.startswith("/"))
    return visited
