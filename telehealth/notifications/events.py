"""Socket.IO: each signed-in user listens in their own room; nobody else gets in."""

from __future__ import annotations

from flask_login import current_user
from flask_socketio import join_room

from telehealth.extensions import socketio
from telehealth.notifications.services import NAMESPACE
from telehealth.security.sessions import answer_unknown_event, socket_session_alive, user_room


@socketio.on("connect", namespace=NAMESPACE)
def connect(auth: object = None) -> bool:
    """Accept only signed-in users, and put them in their own room."""
    if not socket_session_alive():
        return False
    join_room(user_room(current_user.id))
    return True


# Receive-only: an event sent here is answered with an error, or closes a dead session.
socketio.on("*", namespace=NAMESPACE)(answer_unknown_event)
