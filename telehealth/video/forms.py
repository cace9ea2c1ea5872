"""Forms around calls: inviting a guest, proposing a time."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, StringField, SubmitField
from wtforms.validators import DataRequired, Length


class InviteForm(FlaskForm):
    guest_name = StringField(_l("Guest's name"), validators=[DataRequired(), Length(max=120)])
    submit = SubmitField(_l("Create a one-time link"))


class ProposeForm(FlaskForm):
    starts_at = DateTimeLocalField(_l("Call time (your time zone)"), format="%Y-%m-%dT%H:%M",
                                   validators=[DataRequired()])
    submit = SubmitField(_l("Propose this time"))


class ProposalActionForm(FlaskForm):
    """Accepting or withdrawing a proposed time: only the CSRF token."""
