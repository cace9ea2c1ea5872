"""Forms for the roster pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    DateField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from telehealth.consults.forms import MultiCheckboxField
from telehealth.i18n.forms import TimeZoneField
from telehealth.validation import MAX_ID


class InviteForm(FlaskForm):
    email = EmailField(_l("E-mail address"), validators=[DataRequired(), Length(max=254)])
    submit = SubmitField(_l("Create sign-up link"))


class SignUpForm(FlaskForm):
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=120)])
    password = PasswordField(_l("Password (10 characters or more)"),
                             validators=[DataRequired(), Length(min=10, max=200)])
    timezone = TimeZoneField(_l("Time zone"))
    languages = StringField(_l("Languages with level 1-3 (e.g. fr:3 en:2)"),
                            validators=[DataRequired(), Length(max=200)])
    specialties = MultiCheckboxField(_l("Specialties"), validators=[DataRequired()])
    submit = SubmitField(_l("Create my account"))


class SetPasswordForm(FlaskForm):
    """The page behind a set-password link: the account exists, only the password is new."""

    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=120)])
    timezone = TimeZoneField(_l("Time zone"))
    password = PasswordField(_l("Password (10 characters or more)"),
                             validators=[DataRequired(), Length(min=10, max=200)])
    submit = SubmitField(_l("Set my password"))


class ProfileForm(FlaskForm):
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=120)])
    timezone = TimeZoneField(_l("Time zone"))
    specialties = SelectMultipleField(_l("Specialties"), validators=[DataRequired()])
    subspecialty = StringField(_l("Subspecialty"), validators=[Optional(), Length(max=120)])
    languages = StringField(_l("Languages with level 1-3 (e.g. fr:3 en:2)"),
                            validators=[DataRequired(), Length(max=200)])
    capacity = IntegerField(_l("Most open consults at once"),
                            validators=[InputRequired(), NumberRange(min=0, max=100)])
    availability = TextAreaField(
        _l("Weekly availability in local time (e.g. mon 08:00-12:00; tue 14:00-18:00)"),
        validators=[Optional(), Length(max=2000)])
    submit = SubmitField(_l("Save profile"))


class CredentialForm(FlaskForm):
    licence_number = StringField(_l("Licence number"), validators=[DataRequired(),
                                                                   Length(max=60)])
    licence_body = StringField(_l("Issuing body"), validators=[DataRequired(), Length(max=160)])
    licence_country = StringField(_l("Country (two letters)"),
                                  validators=[DataRequired(), Length(min=2, max=2)])
    expires_on = DateField(_l("Expiry date"), validators=[DataRequired()])
    document = FileField(_l("Scan of the licence (PDF, JPEG or PNG)"))
    submit = SubmitField(_l("Save licence"))


class LeaveForm(FlaskForm):
    first_day = DateField(_l("First day"), validators=[DataRequired()])
    last_day = DateField(_l("Last day"), validators=[DataRequired()])
    reason = StringField(_l("Reason (optional)"), validators=[Optional(), Length(max=200)])
    submit = SubmitField(_l("Add leave"))


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"))
    submit = SubmitField(_l("Import"))


class AssignForm(FlaskForm):
    # One of the specialty's volunteers from the list, or anyone on the roster by e-mail.
    specialist_id = IntegerField(_l("Specialist"), validators=[Optional(),
                                                               NumberRange(1, MAX_ID)])
    specialist_email = StringField(validators=[Optional(), Length(max=254)])
    note = StringField(_l("Why (recorded in the audit log)"), validators=[Optional(),
                                                                         Length(max=500)])
    submit = SubmitField(_l("Assign"))
