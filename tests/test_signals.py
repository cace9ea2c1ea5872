"""Features react to each other through telehealth/signals.py, never by calling upward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from telehealth import signals
from telehealth.accounts.models import User
from telehealth.consults.models import ConsultStatus
from telehealth.consults.services import get_visible_consult
from telehealth.errors import NotFound
from telehealth.extensions import db
from telehealth.matching import services as matching
from telehealth.matching.models import Offer


@contextmanager
def deaf(signal: Any, receiver: Any) -> Iterator[None]:
    signal.disconnect(receiver)
    try:
        yield
    finally:
        signal.connect(receiver)


def test_a_submitted_consult_is_offered_because_matching_listens(world, make_consult):
    with deaf(signals.consult_submitted, matching.offer_consult):
        unheard = make_consult(world["clinician"])
    assert unheard.status == ConsultStatus.SUBMITTED  # consults itself offers nothing
    heard = make_consult(world["clinician"], patient_ref="P-002")
    assert heard.status == ConsultStatus.OFFERED
    assert db.session.scalar(db.select(Offer.id).where(Offer.consult_id == heard.id))


def test_an_offered_specialist_reads_the_consult_because_matching_says_so(world, make_consult):
    consult = make_consult(world["clinician"])
    offer = db.session.scalar(db.select(Offer).where(Offer.consult_id == consult.id))
    specialist = db.session.get(User, offer.specialist_id)
    assert get_visible_consult(specialist, consult.id) == consult
    with deaf(signals.consult_visibility, matching._offered_to), pytest.raises(NotFound):
        get_visible_consult(specialist, consult.id)  # deny by default without matching
