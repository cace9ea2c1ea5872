"""Forms of the case conferences."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TextAreaField, TimeField
from wtforms.validators import DataRequired, Length, NumberRange

from telehealth.i18n.forms import TimeZoneField

WEEKDAYS = [(0, _l("Monday")), (1, _l("Tuesday")), (2, _l("Wednesday")), (3, _l("Thursday")),
            (4, _l("Friday")), (5, _l("Saturday")), (6, _l("Sunday"))]


class SeriesForm(FlaskForm):
    topic = StringField(_l("Topic"), validators=[DataRequired(), Length(max=200)])
    languages = StringField(_l("Languages (codes, e.g. fr en)"), default="en",
                            validators=[DataRequired(), Length(max=100)])
    timezone = TimeZoneField(_l("The hub's time zone"), default="UTC")
    weekday = SelectField(_l("Weekday"), choices=WEEKDAYS, coerce=int)
    start = TimeField(_l("Start (hub's local time)"), validators=[DataRequired()])
    duration_minutes = IntegerField(_l("Length (minutes)"), default=90,
                                    validators=[NumberRange(15, 480)])
    teaching_minutes = IntegerField(_l("Teaching slot (minutes)"), default=20,
                                    validators=[NumberRange(0, 240)])
    case_slots = IntegerField(_l("Case slots"), default=3, validators=[NumberRange(0, 12)])
    certificate_percent = IntegerField(_l("Share needed for a certificate (%)"), default=80,
                                       validators=[NumberRange(1, 100)])


class CaseForm(FlaskForm):
    history = TextAreaField(_l("History (no names, dates, places or numbers)"),
                            validators=[Length(max=5000)])
    question = TextAreaField(_l("Question for the hub"),
                             validators=[DataRequired(), Length(max=5000)])
