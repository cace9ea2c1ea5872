"""Forms for requesting and closing consults."""

from __future__ import annotations

import secrets

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

# Flask-WTF's file field keeps only real uploads: text sent under its name (a JSON body, a
# hand-made form) is no file, where WTForms' own field handed the view a str.
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)
from wtforms.widgets import CheckboxInput, ListWidget

from telehealth.consults.models import ConsultMode, Outcome, Sex, Urgency
from telehealth.i18n.services import LANGUAGE_NAMES

SEX_CHOICES = [
    (Sex.FEMALE.value, _l("Female")),
    (Sex.MALE.value, _l("Male")),
    (Sex.OTHER.value, _l("Other")),
    (Sex.UNKNOWN.value, _l("Unknown")),
]
URGENCY_CHOICES = [
    (Urgency.ROUTINE.value, _l("Routine (answer within days)")),
    (Urgency.URGENT.value, _l("Urgent (answer within hours)")),
    (Urgency.EMERGENCY.value, _l("Emergency (answer within minutes)")),
]
MODE_CHOICES = [
    (ConsultMode.WRITTEN.value, _l("Written answer")),
    (ConsultMode.VIDEO.value, _l("Video call")),
]
OUTCOME_CHOICES = [
    (Outcome.TREATED_LOCALLY.value, _l("Treated locally")),
    (Outcome.REFERRED.value, _l("Referred")),
    (Outcome.TRANSFERRED.value, _l("Patient transferred")),
    (Outcome.DIED.value, _l("Patient died")),
    (Outcome.UNKNOWN.value, _l("Unknown")),
]
# The close-out survey's yes/no questions; "" leaves a question unanswered.
YES_NO_CHOICES = [("", "—"), ("yes", _l("Yes")), ("no", _l("No"))]
# Stored codes and what the reader sees.
AGE_BAND_LABELS = {
    "0-28d": _l("0–28 days"),
    "1-11m": _l("1–11 months"),
    "1-4y": _l("1–4 years"),
    "5-14y": _l("5–14 years"),
    "15-24y": _l("15–24 years"),
    "25-44y": _l("25–44 years"),
    "45-64y": _l("45–64 years"),
    "65+y": _l("65 years and over"),
}


def age_band_label(code: str | None) -> str:
    """An age band in the reader's language (a code the app does not know: as stored)."""
    return str(AGE_BAND_LABELS.get(code or "", code or ""))


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ConsultForm(FlaskForm):
    patient_ref = StringField(
        _l("Patient reference (no name)"), validators=[DataRequired(), Length(max=40)]
    )
    patient_age_years = IntegerField(
        _l("Age in years"), validators=[Optional(), NumberRange(min=0, max=130)]
    )
    patient_age_band = SelectField(
        _l("or age band"), choices=[("", "—"), *AGE_BAND_LABELS.items()],
        validators=[Optional()]
    )
    patient_sex = SelectField(_l("Sex"), choices=SEX_CHOICES, validators=[InputRequired()])
    presenting_problem = TextAreaField(
        _l("Presenting problem"), validators=[DataRequired(), Length(max=10_000)]
    )
    history = TextAreaField(_l("History"), validators=[Optional(), Length(max=20_000)])
    question = TextAreaField(
        _l("Your question to the specialist"), validators=[DataRequired(), Length(max=5_000)]
    )
    specialty = SelectField(_l("Specialty wanted"), validators=[InputRequired()])
    urgency = RadioField(
        _l("Urgency"), choices=URGENCY_CHOICES, default=Urgency.ROUTINE.value,
        validators=[InputRequired()],
    )
    mode = RadioField(
        _l("Consult by"), choices=MODE_CHOICES, default=ConsultMode.WRITTEN.value,
        validators=[InputRequired()],
    )
    languages = MultiCheckboxField(
        _l("Languages your clinic can read"),
        choices=list(LANGUAGE_NAMES.items()),
        validators=[DataRequired(message=_l("Choose at least one language."))],
    )
    attachments = MultipleFileField(_l("Photos and documents (JPEG, PNG, PDF)"))
    full_size = BooleanField(_l("Send photos at full size (slower; only when the detail matters)"))
    # One key per form: the same submission sent again (a retry after a dropped connection)
    # finds the consult it made instead of making a second one. The page keeps it in the draft.
    submission_key = HiddenField(validators=[Optional(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")],
                                 default=lambda: secrets.token_urlsafe(24))
    save_draft = SubmitField(_l("Save as draft"))
    submit = SubmitField(_l("Send to specialists"))

    def validate(self, extra_validators: object = None) -> bool:
        ok = super().validate(extra_validators)
        if self.patient_age_years.data is None and not self.patient_age_band.data:
            self.patient_age_years.errors = [*self.patient_age_years.errors,
                                             str(_l("Give the age or an age band."))]
            ok = False
        return ok


class CloseForm(FlaskForm):
    outcome = SelectField(_l("Outcome"), choices=OUTCOME_CHOICES, validators=[InputRequired()])
    outcome_note = TextAreaField(_l("What happened"), validators=[Optional(), Length(max=5_000)])
    rating = SelectField(
        _l("How useful was the answer?"),
        choices=[("", "—"), ("5", "5 ★★★★★"), ("4", "4 ★★★★"), ("3", "3 ★★★"),
                 ("2", "2 ★★"), ("1", "1 ★")],
        validators=[Optional()],
    )
    referral_avoided = SelectField(
        _l("Was a referral or evacuation avoided?"), choices=YES_NO_CHOICES,
        validators=[Optional()],
    )
    course_changed = SelectField(
        _l("Did the answer change the course of action?"), choices=YES_NO_CHOICES,
        validators=[Optional()],
    )
    submit = SubmitField(_l("Close the consult"))


class CancelForm(FlaskForm):
    reason = TextAreaField(_l("Why is it cancelled?"), validators=[Optional(), Length(max=2_000)])


class ActionForm(FlaskForm):
    """A bare form for one-button actions (submit, accept, decline, cancel): CSRF only."""

    submit = SubmitField()
