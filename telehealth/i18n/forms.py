"""The language switcher and the preferences form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField, SubmitField
from wtforms.validators import DataRequired

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
    timezone = SelectField(_l("Time zone"), validators=[DataRequired()])
    submit = SubmitField(_l("Save preferences"))
