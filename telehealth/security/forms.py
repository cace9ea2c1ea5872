"""Forms for the second factor."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length


class CodeForm(FlaskForm):
    code = StringField(_l("6-digit code from your authenticator app"),
                       validators=[DataRequired(), Length(max=10)])
    submit = SubmitField(_l("Continue"))
