"""The language switcher and the preferences form."""

from __future__ import annotations

from typing import Any

from flask import g, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import Field, HiddenField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import TextInput

from telehealth.i18n.formatting import is_timezone
from telehealth.i18n.services import LANGUAGE_NAMES


def language_choices() -> list[tuple[str, str]]:
    # Each language named in itself: a reader lost in a foreign interface finds their own.
    return list(LANGUAGE_NAMES.items())


class LanguageForm(FlaskForm):
    language = SelectField(_l("Language"), choices=language_choices(),
                           validators=[DataRequired()])
    next = HiddenField()
    submit = SubmitField(_l("Change language"))


class ZoneSearchInput(TextInput):
    """A text input that zones.js turns into a search (matches offered as you type, from
    /api/timezones, a public JSON list); without script it is a plain text field."""

    def __call__(self, field: Field, **kwargs: Any) -> Markup:
        options = f"{field.id}-options"
        kwargs = {"list": options, "autocomplete": "off", "dir": "ltr",
                  "data-zone-search": url_for("i18n.search_timezones"),
                  "placeholder": "Africa/Kinshasa", **kwargs}
        html = super().__call__(field, **kwargs) + Markup('<datalist id="%s"></datalist>') \
            % escape(options)
        if not g.get("zone_script_sent"):  # once per page, however many zone fields
            g.zone_script_sent = True
            html += Markup('<script src="%s" defer></script>') % url_for(
                "static", filename="zones.js")
        return Markup(html)


def _known_zone(form: FlaskForm, field: Field) -> None:
    if field.data and not is_timezone(field.data):
        raise ValidationError(_l("Unknown time zone; type a city and choose from the list."))


class TimeZoneField(StringField):
    """The one time zone field of every form: searchable, stripped, an IANA name or an error.

    Validators given (DataRequired or Optional) run first; the zone check comes last, so an
    optional field left empty stays valid.
    """

    widget = ZoneSearchInput()

    def __init__(self, label: Any = None, validators: Any = None, **kwargs: Any) -> None:
        super().__init__(label, [*(validators or [DataRequired()]), Length(max=64),
                                 _known_zone],
                         filters=[lambda value: value.strip() if value else value], **kwargs)


class PreferencesForm(FlaskForm):
    language = SelectField(_l("Language of the interface"), choices=language_choices(),
                           validators=[DataRequired()])
    # A searchable text field, not a list of every zone: the list alone weighed 38 KB.
    timezone = TimeZoneField(_l("Time zone"))
    submit = SubmitField(_l("Save preferences"))
