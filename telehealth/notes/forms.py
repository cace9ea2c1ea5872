"""Forms for case notes."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField  # real uploads only, never text
from wtforms import BooleanField, SelectField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from telehealth.i18n.forms import language_choices


class NoteForm(FlaskForm):
    body = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=20_000)])
    language = SelectField(_l("Language of the note"), default="",
                           choices=[("", _l("Detect automatically")), *language_choices()])
    attachments = MultipleFileField(_l("Attach photos or documents"))
    answer = BooleanField(_l("This is my answer to the clinician's question"))
    submit = SubmitField(_l("Add note"))


class AmendForm(FlaskForm):
    body = TextAreaField(_l("Amended text"), validators=[DataRequired(), Length(max=20_000)])
    submit = SubmitField(_l("Save amendment"))
