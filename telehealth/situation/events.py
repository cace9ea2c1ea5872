"""Live figures: the room's pages listen on /situation and re-fetch when a consult changes.

The hook is the `consult_status_changed` signal, sent by `consults.services.transition()`
(the state machine's only door): the transaction that changed a status is marked, and after
it commits, one small "situation.changed" event (no data: the page fetches its own figures,
under its own filters and access check) goes to the room's listeners. Nothing is sent for a
rolled-back change, and the consult and matching packages need not know the room exists.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import has_app_context
from flask_login import current_user
from flask_socketio import join_room

from telehealth import signals, transaction
from telehealth.accounts.models import Role
from telehealth.consults.models import Consult
from telehealth.extensions import socketio
from telehealth.security.sessions import answer_unknown_event, socket_session_alive, user_room

logger = logging.getLogger(__name__)

NAMESPACE = "/situation"
ROOM = "situation"
_CHANGED = "situation_changed"


@socketio.on("connect", namespace=NAMESPACE)
def connect(auth: object = None) -> bool:
    """Coordinators and administrators only; each also joins their own room, so signing out
    (or losing the role) disconnects this socket like the others."""
    if not socket_session_alive() or current_user.role not in (Role.COORDINATOR, Role.ADMIN):
        return False
    join_room(user_room(current_user.id))
    join_room(ROOM)
    return True


socketio.on("*", namespace=NAMESPACE)(answer_unknown_event)  # the room only sends


def mark_changed(_consult: Consult | None = None, **_changes: Any) -> None:
    """Note that this transaction changed what the room shows: announce it after commit
    (once per transaction, however many consults it moved)."""
    transaction.after_commit(_announce, key=_CHANGED)


def connect_signals() -> None:
    """The room listens to consults' status changes."""
    signals.consult_status_changed.connect(mark_changed)


def _announce() -> None:
    if not has_app_context():
        return
    try:
        socketio.emit("situation.changed", {}, to=ROOM, namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - a dead message queue must not undo a commit
        logger.exception("situation.changed not emitted")
