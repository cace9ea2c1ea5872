"""Sockets end with the session: sign-out, role change and idle time close them or refuse them.

A probe namespace stands in for the video feature's, wired as sessions.py tells every
namespace to be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask_login import current_user
from flask_socketio import disconnect, join_room

from telehealth import clock
from telehealth.accounts.models import Role
from telehealth.accounts.services import update_user
from telehealth.extensions import db, socketio
from telehealth.security.sessions import socket_session_alive, user_room

NS = "/trust-probe"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture()
def probe(app):
    def on_connect(auth=None):
        if not socket_session_alive():
            return False
        join_room(user_room(current_user.id))
        return None

    def on_ping(data=None):
        if not socket_session_alive():
            disconnect()
            return {"status": 401}
        return {"ok": True}

    socketio.on_event("connect", on_connect, namespace=NS)
    socketio.on_event("ping", on_ping, namespace=NS)
    yield
    socketio.server.handlers.pop(NS, None)


def _connect(app, client):
    return socketio.test_client(app, namespace=NS, flask_test_client=client)


def test_signing_out_closes_the_open_socket(app, client, auth, world, probe):
    auth.login(world["clinician"])
    sio = _connect(app, client)
    assert sio.is_connected(NS)
    assert sio.emit("ping", namespace=NS, callback=True) == {"ok": True}
    auth.logout()
    assert not sio.is_connected(NS)


def test_a_copied_cookie_cannot_open_a_socket_after_sign_out(app, client, auth, world, probe):
    auth.login(world["clinician"])
    cookie = client.get_cookie("session").value
    auth.logout()
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    assert not _connect(app, thief).is_connected(NS)


def test_a_role_change_closes_the_socket_and_stale_events_are_refused(app, client, auth, world,
                                                                     probe):
    user = world["clinician"]
    auth.login(user)
    sio = _connect(app, client)
    other_tab = _connect(app, client)
    socketio.server.leave_room(  # as if connected to another process: not in this room here
        next(iter(socketio.server.manager.get_participants(NS, user_room(user.id))))[0],
        user_room(user.id), namespace=NS)
    update_user(user, role=Role.COORDINATOR, active=True, clinic=None)
    db.session.commit()
    assert not sio.is_connected(NS) or not other_tab.is_connected(NS)
    survivor = sio if sio.is_connected(NS) else other_tab
    assert survivor.emit("ping", namespace=NS, callback=True) == {"status": 401}
    assert not survivor.is_connected(NS)


def test_an_idle_socket_is_refused(app, client, auth, world, probe):
    clock.freeze(T0)
    auth.login(world["clinician"])
    sio = _connect(app, client)
    clock.freeze(T0 + timedelta(minutes=20))
    assert sio.emit("ping", namespace=NS, callback=True) == {"ok": True}
    clock.freeze(T0 + timedelta(minutes=20 + 31))
    assert sio.emit("ping", namespace=NS, callback=True) == {"status": 401}
    assert not sio.is_connected(NS)


def test_a_role_that_needs_a_second_factor_gets_no_socket_without_it(app, client, auth, world,
                                                                       probe, monkeypatch):
    monkeypatch.setitem(app.config, "TOTP_REQUIRED_ROLES", ["coordinator"])
    auth.login(world["coordinator"])
    assert not _connect(app, client).is_connected(NS)
