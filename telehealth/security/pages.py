"""Pages the sign-in views of accounts and security both answer with."""

from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _

from telehealth.security import services


def too_many_attempts() -> tuple[str, int, dict[str, str]]:
    """The 429 page for sign-in attempts, the same whoever the account is."""
    message = _("Too many sign-in attempts. Please wait %(n)d minutes and try again.",
                n=services.retry_after_seconds() // 60)
    return render_template("security/blocked.html", message=message), 429, {
        "Retry-After": str(services.retry_after_seconds())}
