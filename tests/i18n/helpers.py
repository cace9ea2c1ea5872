"""Test clients that do not share one request's signed-in user or locale."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask.testing import FlaskClient

from telehealth.accounts.models import User
from tests.conftest import PASSWORD


class FreshClient(FlaskClient):
    """A test client whose requests do not inherit the signed-in user or locale on `g`.

    Each test runs inside one app context, which every request of every client reuses;
    Flask-Login and Flask-Babel cache per-request answers on its `g`.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        g.pop("_login_user", None)
        g.pop("_flask_babel", None)
        return super().open(*args, **kwargs)


def browser(app: Flask, user: User | None = None, accept_language: str = "en") -> FreshClient:
    """A fresh browser, signed in as `user` when given, sending Accept-Language."""
    client = FreshClient(app, app.response_class, use_cookies=True)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    if user is not None:
        response = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert response.status_code == 302, response.text
    return client
