"""The jobs: plain functions, each its own transaction boundary, run by Celery or in-process.

A job runs in an app context of its own and commits what it does (like a request); whatever
it leaves uncommitted is rolled back when it ends. Arguments are plain JSON values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from telehealth.conferences.room import announce_deck
from telehealth.conferences.services import (
    give_up_deck,
    lost_decks,
    prepare_deck,
    send_reminders,
)
from telehealth.extensions import db
from telehealth.matching.sweeper import sweep_once
from telehealth.notifications.outbox import deliver_due
from telehealth.surveillance.services import detection_starting, run_detection
from telehealth.translation.services import store_machine_translation

logger = logging.getLogger(__name__)


def deliver_outbox() -> dict[str, int]:
    """Deliver every due outbox message (e-mail and live events)."""
    result = deliver_due()
    return {"sent": result.sent, "retried": result.retried, "failed": result.failed}


def sweep() -> dict[str, int]:
    """Expire unanswered offers, move stalled consults on, re-offer escalated ones."""
    result = sweep_once()
    return {"expired": result.expired, "advanced": result.advanced,
            "reoffered": result.reoffered, "escalated": result.escalated}


def machine_translate(note_id: int, user_id: int, language: str) -> int | None:
    """Ask the machine translation service for a note's translation and store it."""
    translation_id = store_machine_translation(note_id, user_id, language)
    db.session.commit()
    return translation_id


def surveillance_detect(area_id: int | None = None, syndrome_id: int | None = None) -> int:
    """Run the outbreak detectors (on one syndrome of one area and the areas above it when
    given: what just changed; else on every series); open and announce new alerts."""
    if area_id is not None and syndrome_id is not None:
        detection_starting(area_id, syndrome_id)
    opened = run_detection(area_id=area_id, syndrome_id=syndrome_id)
    db.session.commit()
    return len(opened)


def conference_reminders() -> int:
    """Remind the members of every conference session that starts within a day, once."""
    sent = send_reminders()
    db.session.commit()
    return sent


def render_conference_deck(deck_id: int | None = None) -> str | int | None:
    """Turn an uploaded PDF deck's pages into slides (or refuse it, saying why), then tell
    the session's room pages; without a deck id (the periodic run), every deck whose job
    was lost. Returns the deck's status (or how many lost decks were prepared)."""
    if deck_id is not None:
        return _render_deck(deck_id)
    done = 0
    for lost in lost_decks():
        try:
            _render_deck(lost)
            done += 1
        except Exception:  # noqa: BLE001 - logged; the deck is refused; on to the next
            logger.exception("conference deck %s: preparing it failed", lost)
    return done


def _render_deck(deck_id: int) -> str | None:
    """One deck. A fault (not a refusal) refuses it too, and is raised for the log: no
    deck waits forever, none is kept half."""
    try:
        deck = prepare_deck(deck_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        deck = give_up_deck(deck_id)
        db.session.commit()
        if deck is not None:
            announce_deck(deck)
            raise
        return None  # another run of the job finished it
    if deck is None:
        return None
    announce_deck(deck)
    return deck.status.value


#: Every job by name; Celery registers each as `telehealth.<name>`.
TASKS: dict[str, Callable[..., Any]] = {
    "deliver_outbox": deliver_outbox,
    "sweep": sweep,
    "machine_translate": machine_translate,
    "surveillance_detect": surveillance_detect,
    "conference_reminders": conference_reminders,
    "render_conference_deck": render_conference_deck,
}


def run(app: Flask, name: str, *args: Any) -> Any:
    """Run one job by name in a fresh app context; roll back whatever it left uncommitted."""
    with app.app_context():
        try:
            return TASKS[name](*args)
        finally:
            db.session.rollback()
            db.session.remove()
