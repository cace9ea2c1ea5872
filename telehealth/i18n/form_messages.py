"""WTForms' built-in validation messages, served from our catalogs (WTForms has no Swahili).

The N_ / Nn_ markers only tell `translate extract` to copy these messages into our catalogs;
FormMessages then looks them up there first and falls back to WTForms' own translations.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from babel import support
from flask import request
from flask_babel import get_locale, get_translations, refresh
from wtforms.i18n import messages_path


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext no-op marker
    return message


def Nn_(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802
    return singular, plural


MESSAGES = (
    N_("This field is required."),
    N_("Invalid input."),
    N_("Invalid email address."),
    N_("Field must be equal to %(other_name)s."),
    N_("Field must be between %(min)d and %(max)d characters long."),
    N_("Number must be at least %(min)s."),
    N_("Number must be at most %(max)s."),
    N_("Number must be between %(min)s and %(max)s."),
    N_("Not a valid choice."),
    N_("Invalid Choice: could not coerce."),
    N_("Invalid choice(s): one or more data inputs could not be coerced."),
    N_("Not a valid integer value."),
    N_("Not a valid decimal value."),
    N_("Not a valid date value."),
    N_("Not a valid datetime value."),
    Nn_("Field must be at least %(min)d character long.",
        "Field must be at least %(min)d characters long."),
    Nn_("Field cannot be longer than %(max)d character.",
        "Field cannot be longer than %(max)d characters."),
    Nn_("'%(value)s' is not a valid choice for this field.",
        "'%(value)s' are not valid choices for this field."),
)


class FormMessages:
    """The gettext object Flask-WTF hands to WTForms for this request (loaded on first use)."""

    @cached_property
    def theirs(self) -> Any:
        locale = str(get_locale() or "en")
        return support.Translations.load(messages_path(), [locale], domain="wtforms")

    def gettext(self, string: str) -> str:
        translated = get_translations().gettext(string)
        return translated if translated != string else self.theirs.gettext(string)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        translated = get_translations().ngettext(singular, plural, n)
        if translated not in (singular, plural):
            return translated
        return self.theirs.ngettext(singular, plural, n)

    # Flask-WTF calls the u-prefixed names.
    ugettext = gettext
    ungettext = ngettext


def install_form_messages() -> Any:
    """before_request: let Flask-WTF find our translations of WTForms' messages."""
    # Flask-Babel caches the locale on `g`, which lives as long as the app context: a test
    # client (or a socket handler) reusing one context would keep the first request's language.
    refresh()
    request.wtforms_translations = FormMessages()  # type: ignore[attr-defined]
    return None
