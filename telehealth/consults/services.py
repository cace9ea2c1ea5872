"""Consult requests: who may see them, creating them, and every change of status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from flask import current_app, has_request_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, false, func, or_, select, update
from sqlalchemy.orm import joinedload

from telehealth import clock, signals, uploads
from telehealth.accounts.models import Role, Specialty, User
from telehealth.audit.services import record
from telehealth.clinics.models import Clinic
from telehealth.consults.models import (
    ALLOWED_TRANSITIONS,
    OPEN_STATUSES,
    Attachment,
    Consult,
    ConsultMode,
    ConsultStatus,
    Outcome,
    Sex,
    Urgency,
)
from telehealth.db_types import known, rows_changed
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n.services import label_of
from telehealth.pagination import DEFAULT_PAGE_SIZE, Page, keyset_page

# ---------------------------------------------------------------- access


def visible_consults_clause(user: User) -> Any:
    """SQL condition selecting the consults this user may read (deny by default)."""
    if user.role in (Role.COORDINATOR, Role.ADMIN):
        return Consult.id.is_not(None)
    if user.role == Role.CLINICIAN and user.clinic_id is not None:
        return Consult.clinic_id == user.clinic_id
    if user.role == Role.SPECIALIST:
        # Other features may widen this (matching: consults offered to them), never narrow it.
        return or_(Consult.specialist_id == user.id,
                   *signals.values_from(signals.consult_visibility, user))
    return false()


def get_visible_consult(user: User, consult_id: int, options: Sequence[Any] = ()) -> Consult:
    """Return the consult if the user may read it; otherwise NotFound (never reveal it exists).

    `options`: what the caller's page reads of it, loaded with it (eager loads)."""
    consult = db.session.scalar(
        select(Consult).where(Consult.id == consult_id, visible_consults_clause(user))
        .options(*options)
    )
    if consult is None:
        raise NotFound(_("No such consult, or you do not have access to it."))
    return consult


def can_write_notes(user: User, consult: Consult) -> bool:
    """The requesting clinic's clinicians and the assigned specialist write on an open case."""
    if consult.status in (ConsultStatus.CLOSED, ConsultStatus.CANCELLED):
        return False
    if user.role == Role.CLINICIAN:
        return user.clinic_id == consult.clinic_id
    if user.role == Role.SPECIALIST:
        return consult.specialist_id == user.id
    return False


def consult_url(consult: Consult, external: bool = True) -> str:
    """Link to a consult's page, also from the sweeper where there is no request."""
    if has_request_context():
        return url_for("consults.detail", consult_id=consult.id, _external=external)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/") if external else ""
    return f"{base}/consults/{consult.id}"


def consult_summary(consult: Consult) -> dict[str, object]:
    """What a live notice about a consult shows (urgency_label in the reader's language)."""
    return {
        "consult_id": consult.id,
        "reference": consult.reference,
        "specialty": consult.specialty.name,
        "urgency": consult.urgency.value,
        "urgency_label": urgency_label(consult.urgency),
        "clinic": consult.clinic.name,
        "problem": consult.presenting_problem[:160],
        "url": consult_url(consult, external=False),
    }


def is_requesting_clinician(user: User, consult: Consult) -> bool:
    return user.role == Role.CLINICIAN and user.clinic_id == consult.clinic_id


def consults_query(user: User) -> Select[tuple[Consult]]:
    return select(Consult).where(visible_consults_clause(user))


@dataclass(frozen=True)
class ConsultFilters:
    """What a consult list is narrowed to; None means any."""

    status: str | None = None  # a ConsultStatus value, "open" or "all"
    urgency: Urgency | None = None
    specialty_id: int | None = None
    clinic_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None  # inclusive
    sort: str = ""  # a key of CONSULT_SORTS; "" is the role's default


# Each sort is keys (the last unique) and a direction, with an index in the migration behind
# each combination the lists use.
CONSULT_SORTS: dict[str, tuple[tuple[Any, ...], bool]] = {
    "oldest": ((Consult.created_at, Consult.id), False),
    "newest": ((Consult.created_at, Consult.id), True),
    "updated": ((Consult.updated_at, Consult.id), True),
}
LIST_STATUS_CHOICES = ("open", "all", *[s.value for s in ConsultStatus])


def _optional_int(args: Mapping[str, str], name: str, message: str) -> int | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(message) from exc


def _optional_date(args: Mapping[str, str], name: str) -> date | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(_("Dates are written YYYY-MM-DD.")) from exc


def parse_consult_filters(args: Mapping[str, str]) -> ConsultFilters:
    """Filters from a query string; a clear InvalidInput (400) for any value we do not know."""
    status = args.get("status", "").strip() or None
    if status is not None and status not in LIST_STATUS_CHOICES:
        raise InvalidInput(_("Unknown status."))
    urgency_raw = args.get("urgency", "").strip()
    try:
        urgency = Urgency(urgency_raw) if urgency_raw else None
    except ValueError as exc:
        raise InvalidInput(_("Unknown urgency.")) from exc
    sort = args.get("sort", "").strip()
    if sort and sort not in CONSULT_SORTS:
        raise InvalidInput(_("Unknown sort order."))
    return ConsultFilters(
        status=status, urgency=urgency,
        specialty_id=_optional_int(args, "specialty", _("Choose a specialty from the list.")),
        clinic_id=_optional_int(args, "clinic", _("Choose a clinic from the list.")),
        created_from=_optional_date(args, "from"), created_to=_optional_date(args, "to"),
        sort=sort)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(query: Select[Any], filters: ConsultFilters) -> Select[Any]:
    if filters.status == "open":
        query = query.where(Consult.status.in_(OPEN_STATUSES))
    elif filters.status not in (None, "all"):
        query = query.where(Consult.status == ConsultStatus(filters.status))
    if filters.urgency is not None:
        query = query.where(Consult.urgency == filters.urgency)
    if filters.specialty_id is not None:
        query = query.where(Consult.specialty_id == filters.specialty_id)
    if filters.clinic_id is not None:
        query = query.where(Consult.clinic_id == filters.clinic_id)
    if filters.created_from is not None:
        query = query.where(Consult.created_at >= _day_start(filters.created_from))
    if filters.created_to is not None:
        query = query.where(Consult.created_at < _day_start(filters.created_to)
                            + timedelta(days=1))
    return query


def default_filters(user: User, filters: ConsultFilters) -> ConsultFilters:
    """Coordinators start on the open consults, oldest first; the others on the latest news."""
    coordinator = user.role in (Role.COORDINATOR, Role.ADMIN)
    return replace(filters, status=filters.status or ("open" if coordinator else None),
                   sort=filters.sort or ("oldest" if coordinator else "updated"))


def list_consults(user: User, filters: ConsultFilters, cursor: str | None = None,
                  size: int = DEFAULT_PAGE_SIZE) -> Page[Consult]:
    """One page of the consults this user's lists show (a specialist's offers are apart)."""
    filters = default_filters(user, filters)
    query = _filtered(consults_query(user), filters).options(
        joinedload(Consult.clinic), joinedload(Consult.specialty))
    if user.role == Role.SPECIALIST:
        query = query.where(Consult.specialist_id == user.id)
    keys, descending = CONSULT_SORTS[filters.sort]
    return keyset_page(query, keys, cursor, size, descending=descending)


def filter_choices(user: User) -> dict[str, list[Any]]:
    """The specialties (and, for coordinators, clinics) a consult list can be filtered by."""
    # Names in the reader's language (the hybrid `name`), sorted as the reader reads them.
    specialties = sorted(((s.id, s.name) for s in db.session.scalars(select(Specialty))),
                         key=lambda choice: (choice[1].casefold(), choice[0]))
    clinics: list[Any] = []
    if user.role in (Role.COORDINATOR, Role.ADMIN):
        clinics = list(db.session.execute(select(Clinic.id, Clinic.name)
                                          .order_by(Clinic.name, Clinic.id)))
    return {"specialty_choices": specialties, "clinic_choices": clinics}


def status_counts(user: User) -> dict[ConsultStatus, int]:
    """How many consults of each status the user's dashboard shows, in one aggregate."""
    # Each condition names only indexed columns and the count is count(*), not count(id):
    # (status), (clinic_id, status) and (specialist_id, status) then answer it alone (an
    # index-only scan), however long the clinic's or volunteer's history.
    if user.role in (Role.COORDINATOR, Role.ADMIN):
        # They read every consult. Closed history grows for ever; the dashboard counts what
        # still needs someone.
        where: Any = Consult.status.in_(OPEN_STATUSES)
    elif user.role == Role.SPECIALIST:
        # Their own consults, which visible_consults_clause always includes.
        where = Consult.specialist_id == user.id
    else:
        where = visible_consults_clause(user)
    query = select(Consult.status, func.count()).select_from(Consult).where(where)
    counts = dict(db.session.execute(query.group_by(Consult.status)).tuples().all())
    return {status: counts[status] for status in ConsultStatus if status in counts}


# ---------------------------------------------------------------- state machine


def transition(consult: Consult, to: ConsultStatus, **values: Any) -> None:
    """Move a consult to a new status if the table allows it, atomically.

    The UPDATE is conditional on the status read before, so two people acting at once
    can never both succeed: the slower one gets Conflict.
    """
    current = known(consult.status)
    if to not in ALLOWED_TRANSITIONS[current]:
        raise Conflict(
            _(
                "A consult that is %(current)s cannot become %(new)s.",
                current=status_label(current),
                new=status_label(to),
            )
        )
    now = clock.now()
    result = db.session.execute(
        update(Consult)
        .where(Consult.id == consult.id, Consult.status == current)
        .values(status=to, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if rows_changed(result) != 1:
        db.session.refresh(consult)
        raise Conflict(_("Someone else changed this consult a moment ago; it is now %(status)s.",
                         status=status_label(consult.status)))
    db.session.refresh(consult)
    record("consult.status", consult_id=consult.id, obj=consult, old=current.value, new=to.value)
    signals.consult_status_changed.send(consult, old=current, new=to)


# Labels are lazy strings made once: a label call translates its one string, not the whole
# table (a dashboard asks for about forty status labels; each table was eight look-ups).
STATUS_LABELS = {
    ConsultStatus.DRAFT: _l("draft"),
    ConsultStatus.SUBMITTED: _l("submitted"),
    ConsultStatus.OFFERED: _l("offered"),
    ConsultStatus.ESCALATED: _l("escalated"),
    ConsultStatus.ACCEPTED: _l("accepted"),
    ConsultStatus.ANSWERED: _l("answered"),
    ConsultStatus.CLOSED: _l("closed"),
    ConsultStatus.CANCELLED: _l("cancelled"),
}
OUTCOME_LABELS = {
    Outcome.TREATED_LOCALLY: _l("treated locally"),
    Outcome.REFERRED: _l("referred"),
    Outcome.TRANSFERRED: _l("patient transferred"),
    Outcome.DIED: _l("patient died"),
    Outcome.UNKNOWN: _l("unknown"),
}
SEX_LABELS = {Sex.FEMALE: _l("female"), Sex.MALE: _l("male"), Sex.OTHER: _l("other"),
              Sex.UNKNOWN: _l("sex unknown")}
URGENCY_LABELS = {Urgency.ROUTINE: _l("routine"), Urgency.URGENT: _l("urgent"),
                  Urgency.EMERGENCY: _l("emergency")}
MODE_LABELS = {ConsultMode.WRITTEN: _l("written answer"), ConsultMode.VIDEO: _l("video call")}


def status_label(status: ConsultStatus) -> str:
    return label_of(STATUS_LABELS, status)  # an unknown stored status: "unknown: X"


def outcome_label(outcome: Outcome | None) -> str:
    return label_of(OUTCOME_LABELS, outcome) if outcome else ""


def sex_label(sex: Sex) -> str:
    return label_of(SEX_LABELS, sex)


def urgency_label(urgency: Urgency) -> str:
    return label_of(URGENCY_LABELS, urgency)


def mode_label(mode: ConsultMode) -> str:
    return label_of(MODE_LABELS, mode)


# ---------------------------------------------------------------- creating


@dataclass
class ConsultInput:
    patient_ref: str
    patient_age_years: int | None
    patient_age_band: str | None
    patient_sex: Sex
    presenting_problem: str
    history: str
    question: str
    specialty: Specialty
    urgency: Urgency
    mode: ConsultMode
    languages: list[str]


@dataclass
class Upload:
    stream: IO[bytes]
    filename: str


def consult_by_submission(author: User, key: str | None) -> Consult | None:
    """The consult this clinic's form submission already made, if it was sent before."""
    if not key:
        return None
    return db.session.scalar(select(Consult).where(Consult.submission_key == key,
                                                   Consult.clinic_id == author.clinic_id))


def create_consult(author: User, data: ConsultInput, files: list[Upload], submit: bool,
                   submission_key: str | None = None) -> Consult:
    """Create a consult for the author's clinic, with attachments; submit it if asked.

    A submission sent again with the same key returns the consult it made the first time.
    """
    if author.role != Role.CLINICIAN or author.clinic_id is None:
        raise PermissionDenied(_("Only a clinic's clinicians can request consults."))
    earlier = consult_by_submission(author, submission_key)
    if earlier is not None:
        return earlier
    if not data.languages:
        raise InvalidInput(_("Choose at least one language your clinic can read."))
    # Check every file before anything is written, so one bad file saves nothing.
    checked = [uploads.check_upload(f.stream, f.filename) for f in files]
    consult = Consult(
        clinic_id=author.clinic_id,
        created_by=author,
        status=ConsultStatus.DRAFT,
        patient_ref=data.patient_ref.strip(),
        patient_age_years=data.patient_age_years,
        patient_age_band=data.patient_age_band or None,
        patient_sex=data.patient_sex,
        presenting_problem=data.presenting_problem.strip(),
        history=data.history.strip(),
        question=data.question.strip(),
        specialty=data.specialty,
        urgency=data.urgency,
        mode=data.mode,
        languages=",".join(data.languages),
        submission_key=submission_key or None,
    )
    db.session.add(consult)
    db.session.flush()
    record("consult.created", consult_id=consult.id, obj=consult)
    for item in checked:
        add_attachment(consult, author, item)
    if submit:
        submit_consult(consult, author)
    return consult


def add_attachment(
    consult: Consult, uploader: User, checked: uploads.CheckedFile, note_id: int | None = None
) -> Attachment:
    """Store a checked file and record it on the consult."""
    stored_name, digest = uploads.store(db.session(), checked)
    attachment = Attachment(
        consult_id=consult.id,
        note_id=note_id,
        uploaded_by=uploader,
        original_name=checked.original_name,
        stored_name=stored_name,
        content_type=checked.content_type,
        size=len(checked.data),
        sha256=digest,
        preview_name=uploads.write_file(db.session(), checked.preview) if checked.preview
        else None,
    )
    db.session.add(attachment)
    db.session.flush()
    record("attachment.created", consult_id=consult.id, obj=attachment,
           name=checked.original_name)
    return attachment


def get_visible_attachment(user: User, attachment_id: int) -> Attachment:
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(_("No such file, or you do not have access to it."))
    get_visible_consult(user, attachment.consult_id)  # raises NotFound the same way
    record("attachment.viewed", consult_id=attachment.consult_id, obj=attachment)
    return attachment


# ---------------------------------------------------------------- actions


def _require_requesting_clinician(user: User, consult: Consult) -> None:
    if not is_requesting_clinician(user, consult):
        raise PermissionDenied(_("Only the requesting clinic can do this."))


def submit_consult(consult: Consult, actor: User) -> None:
    """Send a draft to the specialists; matching, listening, offers or escalates it at once."""
    _require_requesting_clinician(actor, consult)
    transition(consult, ConsultStatus.SUBMITTED, submitted_at=clock.now())
    signals.consult_submitted.send(consult)


def cancel_consult(consult: Consult, actor: User, reason: str = "") -> None:
    """Cancel an open consult (its clinic or a coordinator); pending offers are withdrawn."""
    if not (is_requesting_clinician(actor, consult) or actor.role in (Role.COORDINATOR,
                                                                       Role.ADMIN)):
        raise PermissionDenied(_("Only the requesting clinic or a coordinator can cancel."))
    transition(consult, ConsultStatus.CANCELLED)
    signals.consult_cancelled.send(consult)
    record("consult.cancelled", consult_id=consult.id, obj=consult, reason=reason)


def close_consult(
    consult: Consult, actor: User, outcome: Outcome, outcome_note: str, rating: int | None,
    referral_avoided: bool | None = None, course_changed: bool | None = None,
) -> None:
    """Close the loop: the clinic records what became of the patient and rates the answer
    (with the survey's referral-avoided and course-changed answers, if given)."""
    _require_requesting_clinician(actor, consult)
    if rating is not None and not 1 <= rating <= 5:
        raise InvalidInput(_("The rating must be between 1 and 5."))
    transition(
        consult,
        ConsultStatus.CLOSED,
        closed_at=clock.now(),
        outcome=outcome,
        outcome_note=outcome_note.strip(),
        rating=rating,
        referral_avoided=referral_avoided,
        course_changed=course_changed,
    )
