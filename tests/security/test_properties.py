"""Property-based tests: the consult state machine, the upload checker and the sanitisers."""

from __future__ import annotations

import io
import json
import re

import pytest
from flask import render_template_string
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from PIL import Image

from telehealth import uploads
from telehealth.accounts.models import Role, Specialty
from telehealth.accounts.services import create_user
from telehealth.audit.chain import verify_chain
from telehealth.audit.models import AuditEvent
from telehealth.clinics.services import create_clinic
from telehealth.consults.models import (
    ALLOWED_TRANSITIONS,
    Consult,
    ConsultMode,
    ConsultStatus,
    Outcome,
    Sex,
    Urgency,
)
from telehealth.consults.services import (
    ConsultInput,
    cancel_consult,
    close_consult,
    create_consult,
    submit_consult,
    transition,
)
from telehealth.errors import Conflict, ServiceError
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.services import accept_consult, decline_consult
from telehealth.notes.models import Note
from telehealth.notes.services import add_note, amend_note
from telehealth.security.sanitize import ALLOWED_TAGS, sanitize_rich_text
from tests.conftest import PASSWORD, _empty_tables, image_bytes, make_roster_entry, take_consult

# What a view hands to the services: the request class has removed control characters.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=40)
# Weighted towards the people who move a consult on, so sequences reach every status.
ACTOR = st.sampled_from(["clinician"] * 3 + ["specialist"] * 3 + ["specialist_b"] * 2
                        + ["other_clinician", "coordinator"])
S = ConsultStatus


def _new_world() -> dict:
    _empty_tables()
    cardiology = Specialty(code="cardiology", name="Cardiology")
    db.session.add(cardiology)
    clinic = create_clinic(name="Goma", country="CD", languages=["fr", "en"])
    other = create_clinic(name="Gulu", country="UG", languages=["en"])
    people = {
        "clinician": create_user(email="c@x.org", name="C", password=PASSWORD,
                                 role=Role.CLINICIAN, clinic=clinic, languages={"fr": 3}),
        "other_clinician": create_user(email="o@x.org", name="O", password=PASSWORD,
                                       role=Role.CLINICIAN, clinic=other),
        "specialist": create_user(email="s@x.org", name="S", password=PASSWORD,
                                  role=Role.SPECIALIST, specialties=[cardiology],
                                  languages={"fr": 3}),
        "specialist_b": create_user(email="b@x.org", name="B", password=PASSWORD,
                                    role=Role.SPECIALIST, specialties=[cardiology],
                                    languages={"en": 3}),
        "coordinator": create_user(email="k@x.org", name="K", password=PASSWORD,
                                   role=Role.COORDINATOR),
    }
    for key in ("specialist", "specialist_b"):  # approved volunteers the matcher may offer to
        make_roster_entry(people[key])
    consult = create_consult(people["clinician"], ConsultInput(
        patient_ref="P-1", patient_age_years=4, patient_age_band=None, patient_sex=Sex.MALE,
        presenting_problem="Cough", history="", question="Pneumonia?", specialty=cardiology,
        urgency=Urgency.URGENT, mode=ConsultMode.WRITTEN, languages=["fr", "en"]), [],
        submit=False)
    db.session.commit()
    return {"people": people, "consult_id": consult.id}


class ConsultMachine(RuleBasedStateMachine):
    """Random sequences of everything people can do to one consult."""

    def __init__(self) -> None:
        super().__init__()
        world = _new_world()
        self.people = world["people"]
        self.consult_id = world["consult_id"]
        self.notes: dict[int, str] = {}  # note id -> its current text, as the author saved it

    @initialize(start=st.sampled_from(["draft", "offered", "accepted", "answered"]))
    def bring_to(self, start):
        """Begin anywhere along the happy path, so that short sequences reach every status."""
        clinician, specialist = self.people["clinician"], self.people["specialist"]
        if start != "draft":
            submit_consult(self.consult, clinician)
        if start in ("accepted", "answered"):
            take_consult(self.consult, specialist)
        if start == "answered":
            note = add_note(self.consult, specialist, "Answer", answer=True)
            self.notes[note.id] = "Answer"
        db.session.commit()

    @property
    def consult(self) -> Consult:
        return db.session.get(Consult, self.consult_id)

    def _attempt(self, action) -> None:
        before = self.consult.status
        try:
            action()
            db.session.commit()
        except ServiceError:
            db.session.rollback()
            assert self.consult.status == before  # a refusal changes nothing

    @rule(actor=ACTOR)
    def submit(self, actor):
        self._attempt(lambda: submit_consult(self.consult, self.people[actor]))

    @rule(actor=ACTOR)
    def accept(self, actor):
        self._attempt(lambda: accept_consult(self.consult, self.people[actor]))

    @rule(actor=ACTOR)
    def decline(self, actor):
        self._attempt(lambda: decline_consult(self.consult, self.people[actor]))

    @rule(actor=ACTOR, roll=st.integers(0, 7))
    def cancel(self, actor, roll):
        if roll:  # cancelling ends everything: only now and then
            return
        self._attempt(lambda: cancel_consult(self.consult, self.people[actor]))

    @rule(actor=ACTOR, text=TEXT, answer=st.booleans())
    def write_note(self, actor, text, answer):
        def act():
            note = add_note(self.consult, self.people[actor], text, answer=answer)
            self.pending = (note.id, text.strip())

        self.pending = None
        self._attempt(act)
        if self.pending and db.session.get(Note, self.pending[0]) is not None:
            self.notes[self.pending[0]] = self.pending[1]

    @rule(actor=ACTOR, text=TEXT, data=st.data())
    def amend(self, actor, text, data):
        if not self.notes:
            return
        note_id = data.draw(st.sampled_from(sorted(self.notes)))
        note = db.session.get(Note, note_id)
        self._attempt(lambda: amend_note(note, self.people[actor], text))
        db.session.expire_all()
        self.notes[note_id] = db.session.get(Note, note_id).current.body

    @rule(actor=ACTOR, outcome=st.sampled_from(list(Outcome)),
          rating=st.one_of(st.none(), st.integers(-2, 7)))
    def close(self, actor, outcome, rating):
        self._attempt(lambda: close_consult(self.consult, self.people[actor], outcome, "",
                                            rating))

    @invariant()
    def status_is_consistent(self):
        db.session.expire_all()
        consult = self.consult
        assert consult.status in set(ConsultStatus)
        event(f"status {consult.status.value}")
        if consult.status in (S.ACCEPTED, S.ANSWERED, S.CLOSED):
            assert consult.specialist_id in (self.people["specialist"].id,
                                             self.people["specialist_b"].id)
            assert consult.accepted_at is not None
        if consult.status in (S.ANSWERED, S.CLOSED):
            assert consult.answered_at is not None
        if consult.status == S.CLOSED:
            assert consult.outcome is not None and consult.closed_at is not None
            assert consult.rating is None or 1 <= consult.rating <= 5
        offers = db.session.scalars(db.select(Offer).where(
            Offer.consult_id == consult.id)).all()
        assert sum(o.status == OfferStatus.ACCEPTED for o in offers) <= 1
        if consult.status not in (S.SUBMITTED, S.OFFERED, S.ESCALATED):
            assert not any(o.status == OfferStatus.PENDING for o in offers)

    @invariant()
    def every_change_followed_the_table(self):
        for entry in db.session.scalars(db.select(AuditEvent).where(
                AuditEvent.action == "consult.status")):
            detail = json.loads(entry.detail)
            assert S(detail["new"]) in ALLOWED_TRANSITIONS[S(detail["old"])]

    @invariant()
    def no_note_is_lost(self):
        saved = {n.id: n.current.body for n in db.session.scalars(
            db.select(Note).where(Note.consult_id == self.consult_id))}
        assert saved == self.notes

    def teardown(self):
        assert verify_chain(db.session()).intact


def test_no_sequence_of_actions_breaks_a_consult_or_loses_a_note():
    run_state_machine_as_test(ConsultMachine, settings=settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.sampled_from(list(ConsultStatus)), target=st.sampled_from(list(ConsultStatus)))
def test_transition_follows_the_table_exactly(world, make_consult, start, target):
    consult = db.session.scalar(db.select(Consult)) or make_consult(world["clinician"],
                                                                    submit=False)
    db.session.execute(db.update(Consult).where(Consult.id == consult.id).values(status=start))
    db.session.commit()
    db.session.refresh(consult)
    if target in ALLOWED_TRANSITIONS[start]:
        transition(consult, target)
        assert consult.status == target
    else:
        with pytest.raises(Conflict):
            transition(consult, target)
        assert consult.status == start
    db.session.rollback()


# ---------------------------------------------------------------- uploads

MAGIC = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"%PDF-", b"<svg", b"GIF89a", b"PK\x03\x04"]


@settings(max_examples=150, deadline=None)
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=600),
       name=st.text(max_size=80))
def test_upload_checker_accepts_only_clean_files_and_never_crashes(prefix, body, name):
    try:
        checked = uploads.check_upload(io.BytesIO(prefix + body), name)
    except ServiceError as exc:
        assert exc.status_code in (400, 413) and exc.message
        return
    assert checked.content_type in uploads.ALLOWED_TYPES
    assert uploads.sniff(checked.data) == checked.content_type
    if checked.content_type == "application/pdf":
        assert not re.search(rb"<(script|svg|html)", checked.data, re.IGNORECASE)
    else:
        with Image.open(io.BytesIO(checked.data)) as img:
            img.load()


@settings(max_examples=30, deadline=None)
@given(size=st.tuples(st.integers(1, 64), st.integers(1, 64)),
       fmt=st.sampled_from(["JPEG", "PNG"]), trailer=st.binary(max_size=200))
def test_real_images_survive_reencoding_without_what_follows_them(size, fmt, trailer):
    assume(len(trailer) == 0 or trailer.strip())
    checked = uploads.check_upload(io.BytesIO(image_bytes(fmt, size) + trailer), "x")
    with Image.open(io.BytesIO(checked.data)) as img:
        assert img.size == size and not img.getexif()
    if len(trailer) > 8:
        assert trailer not in checked.data


@given(name=st.text(max_size=400))
def test_file_names_are_cleaned_for_display(name):
    clean = uploads.clean_name(name)
    assert 1 <= len(clean) <= 200
    assert "/" not in clean and "\\" not in clean
    assert all(ch.isprintable() for ch in clean)


# ---------------------------------------------------------------- escaping and sanitising

DANGEROUS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)",
             "<a href='javascript:alert(1)'>x</a>", "<svg onload=alert(1)>", "<style>*{}</style>",
             "<iframe src=//evil>", '"><b onmouseover=alert(1)>', "<p style='x'>p</p>",
             "<a href=\"https://ok.example\">ok</a>", "&lt;script&gt;", "<!-- c -->"]


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.one_of(st.sampled_from(DANGEROUS), st.text(max_size=15)),
                      max_size=8))
def test_rich_text_sanitiser_removes_every_script_vector(parts):
    clean = sanitize_rich_text("".join(parts))
    for tag in re.findall(r"<[^>]*>", clean):  # every real tag left (escaped text has no "<")
        name = re.match(r"</?([a-z0-9]+)", tag)
        assert name and name.group(1) in ALLOWED_TAGS, tag
        assert not re.search(r"\s(on\w+|style)\s*=", tag, re.IGNORECASE), tag
        assert "javascript:" not in tag.lower(), tag
    assert sanitize_rich_text(clean) == clean


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_plain_text_is_always_escaped_by_templates(text):
    rendered = render_template_string('<p class="pre">{{ body }}</p>', body=text)
    inner = rendered[len('<p class="pre">'):-len("</p>")]
    assert "<" not in inner and ">" not in inner and '"' not in inner


@given(value=st.recursive(st.text(), lambda children: st.lists(children, max_size=3)
                          | st.dictionaries(st.text(max_size=5), children, max_size=3),
                          max_leaves=10))
def test_input_cleaning_leaves_no_control_character(value):
    from telehealth.security.inputs import strip_controls

    def strings(item):
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            for child in item:
                yield from strings(child)
        elif isinstance(item, dict):
            for key, child in item.items():
                yield key
                yield from strings(child)

    for text in strings(strip_controls(value)):
        assert not any(ord(ch) < 32 and ch not in "\t\n\r" or ord(ch) == 127 for ch in text)
