"""The checks every /call event passes before its handler runs, and what a refusal looks like.

In order: the sender's session is alive (or it is a guest with a redeemed invite), the
socket keeps to its rate, the payload is small enough, and the payload has the shape the
event expects (an object whose fields have the right types; ids fit the database's
integer columns). A refusal is a `call_error` event back to the sender; flooding, oversized
messages or a dead session also end the connection. Nothing refused reaches the media engine, and
nothing a handler raises ends as a traceback for a predictable mistake.

Order: the namespace is served with `async_handlers=False` (see `create_app`), so one
socket's events run one after another in that socket's own connection thread, in the order
the client sent them; another socket's events run in its own thread at the same time.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import request, session
from flask_babel import gettext as _
from flask_socketio import Namespace, disconnect, emit

from telehealth.boundary import unit_of_work
from telehealth.errors import InvalidInput, ServiceError
from telehealth.extensions import db
from telehealth.security.sessions import socket_session_alive, unknown_event_answer
from telehealth.video.directory import is_node_url
from telehealth.video.engine import EngineError
from telehealth.video.services import GUEST_SESSION_KEY

logger = logging.getLogger(__name__)

# Largest payload (JSON characters) each event may carry; a browser's answer with eight
# m-lines is about 8-12 kB.
MAX_PAYLOAD = {"join": 1_000, "answer": 40_000, "candidate": 2_000, "leave": 500,
               "media": 500, "chat": 8_500, "offer": 40_000, "keepalive": 200}
RATE_PER_SECOND = 20.0
RATE_BURST = 60.0
# Ids are INTEGER columns (signed 32 bits on PostgreSQL): anything larger cannot name a
# row, and would overflow inside the query.
MAX_ID = 2**31 - 1


class Refused(Exception):
    """A refused event; `drop` also ends the sender's connection."""

    def __init__(self, message: str, drop: bool = False,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.drop, self.details = message, drop, details or {}


class CallElsewhere(Refused):
    """The call is held by another node: this socket must not start a second one here."""

    def __init__(self, owner: str | None) -> None:
        super().__init__(_("This call is held by another server: reload the page to reach it."),
                         details={"moved": True,
                                  "node_url": owner if owner and is_node_url(owner) else None})


# ---------------------------------------------------------------- payload shapes


@dataclass(frozen=True)
class Field:
    """One field of an event's payload: its accepted types; optional fields may be null."""

    types: tuple[type, ...]
    required: bool = False
    low: int = 0  # for integers
    high: int = MAX_ID

    def accepts(self, value: object) -> bool:
        if value is None:
            return not self.required
        if isinstance(value, bool):
            return bool in self.types  # True is an int to Python, not to us
        if not isinstance(value, self.types):
            return False
        return not isinstance(value, int) or self.low <= value <= self.high


CONSULT_ID = Field((int,), required=True, low=1)
TEXT = Field((str,))
FLAG = Field((bool,))
SHAPES: dict[str, dict[str, Field]] = {
    "join": {"consult_id": CONSULT_ID, "profile": TEXT},
    "answer": {"consult_id": CONSULT_ID, "sdp": Field((str,), required=True)},
    "offer": {"consult_id": CONSULT_ID, "sdp": TEXT},
    "candidate": {"consult_id": CONSULT_ID, "candidate": Field((str,), required=True),
                  "sdpMid": TEXT, "sdpMLineIndex": Field((int,), high=1_000)},
    "leave": {"consult_id": CONSULT_ID},
    "media": {"consult_id": CONSULT_ID, "audio": FLAG, "video": FLAG, "receive_video": FLAG,
              "profile": TEXT},
    "keepalive": {"consult_id": CONSULT_ID},
    "chat": {"consult_id": CONSULT_ID, "body": Field((str,), required=True)},
}


def check_shape(event: str, data: object,
                shapes: dict[str, dict[str, Field]] | None = None) -> dict[str, Any]:
    """The payload as a dict whose known fields have the right types, or InvalidInput."""
    if not isinstance(data, dict):
        raise InvalidInput(_("The message is not understood."))
    for name, spec in (shapes or SHAPES)[event].items():
        if not spec.accepts(data.get(name)):
            raise InvalidInput(_("The message's %(field)s is missing or not valid.",
                                 field=name))
    return data


# ---------------------------------------------------------------- rate


@dataclass
class Bucket:
    tokens: float
    at: float = field(default_factory=time.monotonic)

    def take(self, rate: float, burst: float) -> bool:
        now = time.monotonic()
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class RateLimits:
    """One token bucket per socket: `rate` events a second, `burst` at once."""

    def __init__(self, rate: float = RATE_PER_SECOND, burst: float = RATE_BURST) -> None:
        self.rate, self.burst = rate, burst
        self._lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}

    def take(self, sid: str) -> bool:
        with self._lock:
            bucket = self._buckets.setdefault(sid, Bucket(self.burst))
            return bucket.take(self.rate, self.burst)

    def forget(self, sid: str) -> None:
        with self._lock:
            self._buckets.pop(sid, None)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


# ---------------------------------------------------------------- the guard


def current_sid() -> str:
    """The Socket.IO id of the socket whose event is being handled."""
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid


def is_guest() -> bool:
    """A guest holding a redeemed invite (no account, so no session to check)."""
    return bool(session.get(GUEST_SESSION_KEY))


Owner = TypeVar("Owner")
Handler = Callable[[Owner, dict[str, Any]], None]


def guarded(event: str, rates: Callable[[Owner], RateLimits],
            shapes: dict[str, dict[str, Field]] | None = None,
            max_payload: dict[str, int] | None = None
            ) -> Callable[[Handler[Owner]], Callable[[Owner, Any], None]]:
    """Decorate a namespace's handler for `event` with the checks every event shares.

    The handler gets the payload as a checked dict; it may raise Refused, a ServiceError or
    an EngineError to refuse. It runs in one transaction: committed after it returns,
    rolled back when it refuses or fails. Another namespace (the conference room) passes
    its own `shapes` and `max_payload` for its events; /call's are the default.
    """
    limits = max_payload or MAX_PAYLOAD

    def wrap(func: Handler[Owner]) -> Callable[[Owner, Any], None]:
        @functools.wraps(func)
        def run(owner: Owner, data: Any = None) -> None:
            try:
                if not is_guest() and not socket_session_alive():
                    # Signed out, timed out, or the session was ended elsewhere.
                    raise Refused(_("Your session has ended; please sign in again."),
                                  drop=True)
                if not rates(owner).take(current_sid()):
                    raise Refused(_("Too many messages; the connection is closed."), drop=True)
                try:
                    size = len(json.dumps(data))
                except (TypeError, ValueError):
                    size = limits[event] + 1
                if size > limits[event]:
                    raise Refused(_("The message is too large."), drop=True)
                with unit_of_work():  # one event, one commit (or none if it is refused)
                    func(owner, check_shape(event, data, shapes))
            except (Refused, ServiceError, EngineError) as exc:
                refuse(event, exc)
            except Exception:
                db.session.rollback()
                logger.exception("call event %s failed", event)
                emit("call_error", {"event": event,
                                    "message": _("Something went wrong on our side.")})

        return run

    return wrap


def refuse(event: str, exc: Refused | ServiceError | EngineError) -> None:
    """Roll back, tell the sender why, and end the connection when the refusal says so."""
    db.session.rollback()
    message = exc.message if isinstance(exc, Refused | ServiceError) else str(exc)
    details = exc.details if isinstance(exc, Refused) else {}
    logger.info("call event %s refused for %s: %s", event, current_sid(), message)
    emit("call_error", {**details, "event": event, "message": message})
    if isinstance(exc, Refused) and exc.drop:
        disconnect()


class AnsweringNamespace(Namespace):
    """A namespace that answers an event it has no handler for (a typo, an older page, a
    probe) with `call_error`, as it answers a refused one, instead of dropping it unheard."""

    def trigger_event(self, event: str, *args: Any) -> Any:
        if event not in ("connect", "disconnect") and not hasattr(self, f"on_{event or ''}"):
            return self.socketio._handle_event(  # the same contexts a handler runs in
                functools.partial(_answer_unknown, str(event)), event, self.namespace, *args)
        return super().trigger_event(event, *args)


# Events /call has no handler for; a guest's socket has no signed-in session to check.
_answer_unknown = unknown_event_answer(
    "call_error", lambda: _("The message is not understood."),
    alive=lambda: is_guest() or socket_session_alive())
