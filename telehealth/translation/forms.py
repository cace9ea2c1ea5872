"""Forms for note languages and translations."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from telehealth.i18n.forms import language_choices


class NoteLanguageForm(FlaskForm):
    language = SelectField(_l("Language of the note"), choices=language_choices(),
                           validators=[DataRequired()])
    submit = SubmitField(_l("Correct the language"))


class TranslationForm(FlaskForm):
    language = SelectField(_l("Into"), choices=language_choices(), validators=[DataRequired()])
    text = TextAreaField(_l("Translation"), validators=[DataRequired(), Length(max=20_000)])
    submit = SubmitField(_l("Save translation"))


class LanguageOnlyForm(FlaskForm):
    """Ask for a translation, or a machine translation, into one language."""

    language = SelectField(_l("Into"), choices=language_choices(), validators=[DataRequired()])
