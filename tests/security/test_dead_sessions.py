"""Every namespace refuses a socket whose session ended, even one that only listens."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import update

from telehealth.accounts.models import User
from telehealth.extensions import db, socketio
from telehealth.notifications.services import NAMESPACE
from tests.conftest import PASSWORD


def test_a_listening_socket_whose_session_ended_elsewhere_is_closed_by_its_next_event(
        app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    user = world["clinician"]
    db.session.commit()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code in (302, 303)
    g.pop("_login_user", None)
    sio = socketio.test_client(app, namespace=NAMESPACE, flask_test_client=client)
    assert sio.is_connected(NAMESPACE)
    sio.emit("anything", {"x": 1}, namespace=NAMESPACE)
    assert sio.is_connected(NAMESPACE)  # alive: ignored
    # Signed out on a process whose message never came (no queue here): only the database
    # knows the session token changed.
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_token="rotated-on-another-process"))
    db.session.commit()
    g.pop("_login_user", None)
    sio.emit("anything", {"x": 2}, namespace=NAMESPACE)
    assert not sio.is_connected(NAMESPACE)
