"""Forms for managing users and clinics."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from telehealth.accounts.models import Role
from telehealth.i18n.forms import TimeZoneField
from telehealth.i18n.services import LANGUAGE_NAMES

ROLE_CHOICES = [
    (Role.CLINICIAN.value, _l("Clinician")),
    (Role.SPECIALIST.value, _l("Specialist")),
    (Role.COORDINATOR.value, _l("Coordinator")),
    (Role.ADMIN.value, _l("Administrator")),
    (Role.SURVEILLANCE_OFFICER.value, _l("Surveillance officer")),
]


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254), Regexp(
        r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message=_l("This is not an e-mail address."))])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    password = PasswordField(_l("Initial password"), validators=[DataRequired(),
                                                                 Length(min=10, max=200)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)
    clinic = SelectField(_l("Clinic (clinicians only)"), choices=[], validators=[Optional()])
    timezone = TimeZoneField(_l("Time zone"), default="UTC")
    locale = SelectField(_l("Interface language"), choices=list(LANGUAGE_NAMES.items()))
    specialties = SelectMultipleField(_l("Specialties (specialists only)"), choices=[],
                                      validators=[Optional()])
    languages = SelectMultipleField(_l("Languages read and written"),
                                    choices=list(LANGUAGE_NAMES.items()), validators=[Optional()])
    submit = SubmitField(_l("Create user"))


class UserEditForm(FlaskForm):
    role = SelectField(_l("Role"), choices=ROLE_CHOICES)
    clinic = SelectField(_l("Clinic (clinicians only)"), choices=[], validators=[Optional()])
    # Here an administrator repairs a stored zone or language the pages could not use.
    timezone = TimeZoneField(_l("Time zone"), validators=[Optional()])
    locale = SelectField(_l("Interface language"),
                         choices=[("", "—"), *LANGUAGE_NAMES.items()], validators=[Optional()])
    active = BooleanField(_l("Active (may sign in)"))
    submit = SubmitField(_l("Save"))


class ClinicForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=160)])
    country = StringField(
        _l("Country (two-letter code)"),
        validators=[DataRequired(), Regexp(r"^[A-Za-z]{2}$", message=_l("Two letters, e.g. CD."))],
    )
    city = StringField(_l("City"), validators=[Optional(), Length(max=120)])
    timezone = TimeZoneField(_l("Time zone"), default="UTC")
    languages = SelectMultipleField(
        _l("Languages the clinic reads"), choices=list(LANGUAGE_NAMES.items()),
        validators=[DataRequired()],
    )
    submit = SubmitField(_l("Create clinic"))
