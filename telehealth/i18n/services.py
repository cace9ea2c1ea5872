"""Changing a person's language and time zone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from telehealth.accounts.models import User
from telehealth.audit.services import record
from telehealth.validation import check_language, check_timezone  # noqa: F401  (re-exported)

# Each language named in itself, for the switcher and the language fields of forms.
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "Français",
    "es": "Español",
    "pt": "Português",
    "ar": "العربية",
    "sw": "Kiswahili",
}
RTL_LANGUAGES = {"ar"}


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


def label_of(labels: Mapping[Any, Any], value: Any) -> str:
    """The reader's label for a stored value; an unknown stored value shows as itself."""
    label = labels.get(value)
    return str(value) if label is None else str(label)
