"""Pages the sign-in views of accounts and security both answer with."""

from __future__ import annotations

from flask import render_template
from flask_babel import ngettext

from telehealth.security import services


def too_many_attempts(seconds: int | None = None) -> tuple[str, int, dict[str, str]]:
    """The 429 page for sign-in attempts, the same whoever the account is."""
    seconds = seconds or services.retry_after_seconds()
    minutes = max(1, -(-seconds // 60))
    message = ngettext("Too many sign-in attempts. Please wait %(num)d minute and try again.",
                       "Too many sign-in attempts. Please wait %(num)d minutes and try again.",
                       minutes)
    return render_template("security/blocked.html", message=message), 429, {
        "Retry-After": str(seconds)}
