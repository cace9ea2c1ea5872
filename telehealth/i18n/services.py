"""Changing a person's language and time zone."""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from flask_babel import gettext as _

from telehealth.accounts.models import User
from telehealth.audit.services import record
from telehealth.errors import InvalidInput
from telehealth.i18n.formatting import is_timezone


def check_language(language: str) -> str:
    if language not in current_app.config["LANGUAGES"]:
        raise InvalidInput(_("This language is not available."))
    return language


def check_timezone(timezone: str) -> str:
    """The zone name, if the app can use it (the rule for every form, import and seed)."""
    if not is_timezone(timezone):
        raise InvalidInput(_("Unknown time zone."))
    return timezone


def set_preferences(user: User, language: str, timezone: str | None = None) -> None:
    """Store the interface language (and the time zone, when given) in the user's profile."""
    user.locale = check_language(language)
    if timezone is not None:
        user.timezone = check_timezone(timezone)
    record("account.preferences", obj=user, locale=user.locale, timezone=user.timezone)


def browser_language(accepted: Iterable[tuple[str, float]], available: list[str]) -> str | None:
    """The browser's most wanted language we have, matched on the primary subtag.

    Werkzeug's best_match prefers an exact match anywhere in the list, so "sw-KE, en;q=0.5"
    would get English; a Kenyan reader asked for Swahili first.
    """
    for tag, _quality in sorted(accepted, key=lambda item: -item[1]):
        primary = tag.replace("_", "-").split("-")[0].lower()
        if primary in available:
            return primary
    return None
