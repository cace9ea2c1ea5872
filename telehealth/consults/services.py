"""Consult requests: who may see them, creating them, and every change of status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from flask_babel import gettext as _
from sqlalchemy import Select, exists, select, update

from telehealth import clock, uploads
from telehealth.accounts.models import Role, Specialty, User
from telehealth.audit.services import record
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
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus

# ---------------------------------------------------------------- access


def visible_consults_clause(user: User) -> Any:
    """SQL condition selecting the consults this user may read (deny by default)."""
    if user.role in (Role.COORDINATOR, Role.ADMIN):
        return Consult.id.is_not(None)
    if user.role == Role.CLINICIAN and user.clinic_id is not None:
        return Consult.clinic_id == user.clinic_id
    if user.role == Role.SPECIALIST:
        pending_offer = exists().where(
            Offer.consult_id == Consult.id,
            Offer.specialist_id == user.id,
            Offer.status == OfferStatus.PENDING,
        )
        return (Consult.specialist_id == user.id) | pending_offer
    return Consult.id.is_(None)


def get_visible_consult(user: User, consult_id: int) -> Consult:
    """Return the consult if the user may read it; otherwise NotFound (never reveal it exists)."""
    consult = db.session.scalar(
        select(Consult).where(Consult.id == consult_id, visible_consults_clause(user))
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


def is_requesting_clinician(user: User, consult: Consult) -> bool:
    return user.role == Role.CLINICIAN and user.clinic_id == consult.clinic_id


def consults_query(user: User) -> Select[tuple[Consult]]:
    return select(Consult).where(visible_consults_clause(user))


def list_for_dashboard(user: User) -> list[Consult]:
    """The consults a user's dashboard lists: open ones oldest first for coordinators."""
    query = consults_query(user)
    if user.role in (Role.COORDINATOR, Role.ADMIN):
        query = query.where(Consult.status.in_(OPEN_STATUSES)).order_by(Consult.created_at)
    else:
        if user.role == Role.SPECIALIST:  # offers are listed apart from assigned cases
            query = query.where(Consult.specialist_id == user.id)
        query = query.order_by(Consult.updated_at.desc())
    return list(db.session.scalars(query))


# ---------------------------------------------------------------- state machine


def transition(consult: Consult, to: ConsultStatus, **values: Any) -> None:
    """Move a consult to a new status if the table allows it, atomically.

    The UPDATE is conditional on the status read before, so two people acting at once
    can never both succeed: the slower one gets Conflict.
    """
    current = consult.status
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
    if result.rowcount != 1:
        db.session.refresh(consult)
        raise Conflict(_("Someone else changed this consult a moment ago; it is now %(status)s.",
                         status=status_label(consult.status)))
    db.session.refresh(consult)
    record("consult.status", consult_id=consult.id, obj=consult, old=current.value, new=to.value)


def status_label(status: ConsultStatus) -> str:
    labels = {
        ConsultStatus.DRAFT: _("draft"),
        ConsultStatus.SUBMITTED: _("submitted"),
        ConsultStatus.OFFERED: _("offered"),
        ConsultStatus.ESCALATED: _("escalated"),
        ConsultStatus.ACCEPTED: _("accepted"),
        ConsultStatus.ANSWERED: _("answered"),
        ConsultStatus.CLOSED: _("closed"),
        ConsultStatus.CANCELLED: _("cancelled"),
    }
    return labels[status]


def outcome_label(outcome: Outcome | None) -> str:
    labels = {
        Outcome.TREATED_LOCALLY: _("treated locally"),
        Outcome.REFERRED: _("referred"),
        Outcome.TRANSFERRED: _("patient transferred"),
        Outcome.DIED: _("patient died"),
        Outcome.UNKNOWN: _("unknown"),
    }
    return labels[outcome] if outcome else ""


def sex_label(sex: Sex) -> str:
    labels = {Sex.FEMALE: _("female"), Sex.MALE: _("male"), Sex.OTHER: _("other"),
              Sex.UNKNOWN: _("sex unknown")}
    return labels[sex]


def urgency_label(urgency: Urgency) -> str:
    labels = {Urgency.ROUTINE: _("routine"), Urgency.URGENT: _("urgent"),
              Urgency.EMERGENCY: _("emergency")}
    return labels[urgency]


def mode_label(mode: ConsultMode) -> str:
    return _("written answer") if mode == ConsultMode.WRITTEN else _("video call")


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
    stored_name, digest = uploads.store(db.session, checked)
    attachment = Attachment(
        consult_id=consult.id,
        note_id=note_id,
        uploaded_by=uploader,
        original_name=checked.original_name,
        stored_name=stored_name,
        content_type=checked.content_type,
        size=len(checked.data),
        sha256=digest,
        preview_name=uploads.write_file(db.session, checked.preview) if checked.preview
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
    """Send a draft to the specialists: it is offered at once, or escalated if nobody fits."""
    from telehealth.matching.services import offer_consult

    _require_requesting_clinician(actor, consult)
    transition(consult, ConsultStatus.SUBMITTED, submitted_at=clock.now())
    offer_consult(consult)


def cancel_consult(consult: Consult, actor: User, reason: str = "") -> None:
    """Cancel an open consult (its clinic or a coordinator); pending offers are withdrawn."""
    from telehealth.matching.services import withdraw_pending_offers

    if not (is_requesting_clinician(actor, consult) or actor.role in (Role.COORDINATOR,
                                                                       Role.ADMIN)):
        raise PermissionDenied(_("Only the requesting clinic or a coordinator can cancel."))
    transition(consult, ConsultStatus.CANCELLED)
    withdraw_pending_offers(consult)
    record("consult.cancelled", consult_id=consult.id, obj=consult, reason=reason)


def close_consult(
    consult: Consult, actor: User, outcome: Outcome, outcome_note: str, rating: int | None
) -> None:
    """Close the loop: the clinic records what became of the patient and rates the answer."""
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
    )
