"""`make run` on a fresh clone: every demo account opens every page its role links to."""

from __future__ import annotations

from typing import Any

from telehealth.accounts.models import User
from telehealth.cli import DEMO_PASSWORD
from telehealth.extensions import db
from tests.weight.demo import seed_world, walk


def test_every_demo_account_opens_every_page_it_links_to(app: Any) -> None:
    seed_world(photo_size=(320, 240))
    accounts = [(u.email, u.role.value) for u in db.session.scalars(db.select(User))]
    assert len(accounts) >= 19
    failures = []
    for email, role in accounts:
        client = app.test_client()
        signed_in = client.post("/login", data={"email": email, "password": DEMO_PASSWORD})
        assert signed_in.status_code == 302, email

        def fetch(path: str, client: Any = client) -> tuple[int, str]:
            response = client.get(path)
            return response.status_code, response.get_data(as_text=True)

        visited = walk(fetch)
        assert len(visited) >= 3, (email, visited)
        failures += [(role, email, path, status) for path, status in visited.items()
                     if status >= 400]
    assert failures == []
