"""Live figures: the room's pages listen on /situation and re-fetch when a consult changes.

The hook is one listener on the ORM: every change of a consult's status is an ORM UPDATE of
`consults` issued by `consults.services.transition()` (the state machine's only door), so a
session that ran one is marked, and after it commits, one small "situation.changed" event
(no data: the page fetches its own figures, under its own filters and access check) goes
to the room's listeners. Nothing is sent for a rolled-back change, and the consult and
matching packages need not know the room exists. When named signals arrive
(telehealth/signals.py), `mark_changed` is the function to connect to a status-changed signal
instead.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import has_app_context
from flask_login import current_user
from flask_socketio import join_room
from sqlalchemy import event
from sqlalchemy.orm import Session

from telehealth import transaction
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


def mark_changed(session: Session) -> None:
    """Note that this transaction changed what the room shows: announce it after commit."""
    transaction.after_commit(_announce, session, key=_CHANGED)


@event.listens_for(Session, "do_orm_execute")
def _watch_consult_updates(state: Any) -> None:
    if state.is_update and state.bind_mapper is not None \
            and state.bind_mapper.class_ is Consult:
        mark_changed(state.session)


def _announce() -> None:
    if not has_app_context():
        return
    try:
        socketio.emit("situation.changed", {}, to=ROOM, namespace=NAMESPACE)
    except Exception:  # noqa: BLE001 - a dead message queue must not undo a commit
        logger.exception("situation.changed not emitted")
