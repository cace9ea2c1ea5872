"""Idle time-out for pages and sockets, and ending a user's open sockets with their sessions.

Socket.IO handlers (the video feature's `events.py`) must, at the start of every event::

    if not socket_session_alive():
        disconnect()
        return

and, on connect, `join_room(user_room(current_user.id))`: then signing out, a password or
role change and deactivation disconnect that user's sockets in this process at once
(`sessions_ended` fires after the commit), and every other process refuses the next event
because the session token no longer matches.

Flask-SocketIO keeps its own copy of the session per connection: socket events keep the
socket alive but do not refresh the page session's idle clock (and page requests do not
refresh the socket's). A page that only holds a long call should make a request now and then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from blinker import Namespace
from flask import current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from flask_socketio import disconnect, emit
from sqlalchemy import event
from sqlalchemy.orm import object_session

from telehealth import clock, transaction
from telehealth.accounts.models import User
from telehealth.audit.services import record
from telehealth.extensions import socketio

SEEN_KEY = "_seen"
_ENDED = "sessions_ended"

signals = Namespace()
#: Sent after a commit that rotated session tokens; receivers get `user_ids=set[int]`.
sessions_ended = signals.signal("sessions-ended")


def mark_active() -> None:
    """Note that the signed-in person did something just now."""
    session[SEEN_KEY] = int(clock.now().timestamp())


def is_idle() -> bool:
    """Whether this session has been unused for longer than the idle time-out."""
    seen = session.get(SEEN_KEY)
    if seen is None:
        return False  # a fresh session (just signed in, or restored by remember-me)
    limit = current_app.config["IDLE_TIMEOUT_MINUTES"] * 60
    return clock.now().timestamp() - float(seen) > limit


def _end_idle_session() -> None:
    record("session.timed_out", actor_id=current_user.id)  # the request's boundary commits
    logout_user()
    session.clear()


def enforce_idle_timeout() -> Any:
    """before_request: sign out a session that was idle too long, else mark it active."""
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    if is_idle():
        _end_idle_session()
        if request.endpoint == "accounts.login":
            return None  # signing in again is just what a timed-out person should do
        message = _("You were signed out after %(n)d minutes without activity.",
                    n=current_app.config["IDLE_TIMEOUT_MINUTES"])
        if request.path.startswith("/api/") or request.accept_mimetypes.best == \
                "application/json":
            return jsonify({"error": message, "status": 401}), 401
        flash(message, "info")
        target = request.full_path if request.method == "GET" else None
        return redirect(url_for("accounts.login", next=target))
    mark_active()
    return None


def socket_session_alive() -> bool:
    """For Socket.IO events: True while the user is signed in and the session is not idle.

    The user is loaded afresh, so a session token rotated since the last event counts.
    """
    g.pop("_login_user", None)
    if not current_user.is_authenticated or is_idle():
        return False
    if second_factor_required(current_user) and not current_user.totp_secret:
        return False  # pages send them to turn it on first; sockets just refuse
    mark_active()
    return True


def unknown_event_answer(reply: str, message: Callable[[], str],
                         alive: Callable[[], bool] = socket_session_alive
                         ) -> Callable[..., None]:
    """A catch-all for the events a namespace has no handler for, called with the event's
    name: a socket whose session ended elsewhere (`alive` is False) is closed by its next
    event; anything else sent there is answered with a `reply` event naming it and saying
    `message()`, never dropped in silence."""

    def answer(event: object = None, *args: object) -> None:
        if not alive():
            disconnect()
            return
        emit(reply, {"event": str(event)[:64], "message": message()})

    return answer


# The catch-all ("*") of a namespace that only sends.
answer_unknown_event = unknown_event_answer(
    "error", lambda: _("This channel only sends; your message was not used."))


def second_factor_required(user: User) -> bool:
    """Whether this user's role must use a second factor in this deployment."""
    return user.role.value in current_app.config["TOTP_REQUIRED_ROLES"]


def user_room(user_id: int) -> str:
    """The Socket.IO room every connection of one user joins."""
    return f"user:{user_id}"


def disconnect_user_sockets(user_ids: Iterable[int]) -> int:
    """Disconnect this process's sockets of these users, in every namespace."""
    server = getattr(socketio, "server", None)
    if server is None:
        return 0
    count = 0
    for namespace in list(server.manager.get_namespaces()):
        for user_id in user_ids:
            for sid, _eio_sid in list(server.manager.get_participants(namespace,
                                                                       user_room(user_id))):
                server.disconnect(sid, namespace=namespace)
                count += 1
    return count


@event.listens_for(User.session_token, "set")
def _note_rotation(target: User, value: str, old: Any, initiator: Any) -> None:
    if target.id is None or old is value:
        return
    owner = object_session(target)
    if owner is not None:
        ended = transaction.collected(_ENDED, owner)
        ended.append(target.id)
        transaction.after_commit(partial(_announce_ended_sessions, ended), owner, key=_ENDED)


def _announce_ended_sessions(user_ids: list[int]) -> None:
    sessions_ended.send(None, user_ids=set(user_ids))


@sessions_ended.connect
def _disconnect_sockets(sender: object, user_ids: set[int]) -> None:
    from telehealth.extensions import socketio

    disconnect_user_sockets(user_ids)
    # The other processes close theirs on hearing it through the message queue (see
    # telehealth.realtime); one process alone has no queue.
    manager = getattr(getattr(socketio, "server", None), "manager", None)
    publish = getattr(manager, "publish_sessions_ended", None)
    if publish is not None:
        publish(user_ids)
