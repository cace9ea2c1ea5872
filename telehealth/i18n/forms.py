"""The language switcher and the preferences form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError

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


class PreferencesForm(FlaskForm):
    language = SelectField(_l("Language of the interface"), choices=language_choices(),
                           validators=[DataRequired()])
    # A searchable text field (zones.js offers matches as you type), not a list of every zone:
    # the list alone weighed 38 KB on every visit.
    timezone = StringField(_l("Time zone"), validators=[DataRequired(), Length(max=64)],
                           render_kw={"list": "timezone-options", "autocomplete": "off",
                                      "data-zone-search": "/api/timezones", "dir": "ltr",
                                      "placeholder": "Africa/Kinshasa"})

    def validate_timezone(self, field: StringField) -> None:
        if not is_timezone(field.data or ""):
            raise ValidationError(_l("Unknown time zone; type a city and choose from the list."))
    submit = SubmitField(_l("Save preferences"))
