"""The offer cascade: offer to the best candidates, move on when they decline or stay silent,
escalate to coordinators when nobody is left, and let exactly one specialist take a consult.

Concurrency: every step that moves a consult on first locks its row (`FOR UPDATE`, with
`SKIP LOCKED` for sweepers on PostgreSQL) and then re-reads the offers in a new statement, so
two sweepers or a sweeper and a decline never both advance the same consult.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_request_context, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import case, func, select, update

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.consults.models import TAKEABLE_STATUSES, Consult, ConsultStatus, Urgency
from telehealth.consults.services import transition, urgency_label
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n.formatting import local_deadline
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.ranking import Candidate, offer_expiry, offer_fanout, rank_specialists
from telehealth.notifications.services import coordinators, notify
from telehealth.roster.models import SpecialistProfile

__all__ = [
    "Candidate", "accept_consult", "advance_consult", "answer_by", "assign_consult",
    "decline_consult", "escalated_consult_ids", "expire_due_offers", "has_pending_offer",
    "offer_consult", "pending_offers_for", "rank_specialists", "reoffer_for_specialist",
    "reoffer_if_candidate", "stalled_consult_ids", "withdraw_pending_offers",
]


def _consult_payload(consult: Consult) -> dict[str, object]:
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


def consult_url(consult: Consult, external: bool = True) -> str:
    """Link to a consult's page, also from the sweeper where there is no request."""
    if has_request_context():
        return url_for("consults.detail", consult_id=consult.id, _external=external)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/") if external else ""
    return f"{base}/consults/{consult.id}"


def answer_by(deadline: datetime, locale: str, timezone: str) -> str:
    """'answer by 14:30' in that locale and time zone (the offer cards, the live event)."""
    with force_locale(locale):
        return _("answer by %(time)s", time=local_deadline(deadline, locale, timezone))


def _lock_consult(consult_id: int, skip_locked: bool = False) -> Consult | None:
    """Lock a consult's row for this transaction and return it fresh (None: someone else has it)."""
    return db.session.scalar(
        select(Consult).where(Consult.id == consult_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )


def _pending_count(consult_id: int) -> int:
    return db.session.scalar(select(func.count(Offer.id)).where(
        Offer.consult_id == consult_id, Offer.status == OfferStatus.PENDING)) or 0


def offer_consult(consult: Consult) -> list[Offer]:
    """Offer a just-submitted consult to its best candidates, or escalate it."""
    _lock_consult(consult.id)
    return advance_consult(consult)


def advance_consult(consult: Consult, reason: str = "no candidate") -> list[Offer]:
    """Offer to the next candidates; escalate when none is left. The caller holds the row lock."""
    now = clock.now()
    candidates = rank_specialists(consult, limit=offer_fanout(consult.urgency))
    if not candidates:
        _escalate(consult, reason)
        return []
    expires_at = now + offer_expiry(consult.urgency)
    offers = [Offer(consult_id=consult.id, specialist_id=c.user_id, status=OfferStatus.PENDING,
                    created_at=now, expires_at=expires_at) for c in candidates]
    db.session.add_all(offers)
    db.session.flush()
    transition(consult, ConsultStatus.OFFERED)
    payload = _consult_payload(consult)
    for offer, candidate in zip(offers, candidates, strict=True):
        record("offer.created", consult_id=consult.id, obj=offer,
               specialist_id=offer.specialist_id, expires_at=expires_at.isoformat(),
               wait_minutes=candidate.wait_minutes)
        specialist = db.session.get(User, offer.specialist_id)
        if specialist is None:  # pragma: no cover - the row was just ranked
            continue
        locale = specialist.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
        deadline = answer_by(expires_at, locale, specialist.timezone)
        notify(specialist, "offer.new", payload | {"deadline": deadline},
               subject=lambda: _("New consult offered to you: %(ref)s", ref=consult.reference),
               body=lambda: _("A %(urgency)s consult in %(specialty)s from %(clinic)s is "
                              "waiting for your answer: %(url)s",
                              urgency=urgency_label(consult.urgency),
                              specialty=consult.specialty.name, clinic=consult.clinic.name,
                              url=consult_url(consult)))
    return offers


def _escalate(consult: Consult, reason: str) -> None:
    if consult.status == ConsultStatus.ESCALATED:
        return
    transition(consult, ConsultStatus.ESCALATED)
    record("consult.escalated", consult_id=consult.id, obj=consult, reason=reason)
    payload = _consult_payload(consult)
    for person in coordinators():
        notify(person, "consult.escalated", payload,
               subject=lambda: _("Consult %(ref)s needs a specialist", ref=consult.reference),
               body=lambda: _("Nobody on the roster could take consult %(ref)s (%(specialty)s, "
                              "%(urgency)s). Please assign it: %(url)s",
                              ref=consult.reference, specialty=consult.specialty.name,
                              urgency=urgency_label(consult.urgency),
                              url=consult_url(consult)))


def pending_offers_for(specialist: User) -> list[Offer]:
    """The offers waiting for this specialist's answer, oldest first."""
    query = (
        select(Offer)
        .where(Offer.specialist_id == specialist.id, Offer.status == OfferStatus.PENDING)
        .order_by(Offer.created_at)
    )
    return list(db.session.scalars(query))


def _pending_offer(consult: Consult, specialist: User) -> Offer:
    offer = db.session.scalar(
        select(Offer).where(
            Offer.consult_id == consult.id,
            Offer.specialist_id == specialist.id,
            Offer.status == OfferStatus.PENDING,
        )
    )
    if offer is None:
        raise NotFound(_("This consult is not offered to you (any more)."))
    return offer


def _record_response_time(specialist_id: int, offer: Offer, now: datetime) -> None:
    minutes = max((now - offer.created_at).total_seconds() / 60, 0.0)
    profile = db.session.scalar(select(SpecialistProfile).where(
        SpecialistProfile.user_id == specialist_id))
    if profile is None:
        return
    count = profile.responses_count
    previous = profile.response_minutes_avg or 0.0
    profile.response_minutes_avg = (previous * count + minutes) / (count + 1)
    profile.responses_count = count + 1


def accept_consult(consult: Consult, specialist: User) -> None:
    """Take an offered consult; when several accept at once exactly one gets it."""
    if specialist.role != Role.SPECIALIST:
        raise PermissionDenied(_("Only specialists take consults."))
    offer = _pending_offer(consult, specialist)
    taken = Conflict(_("This consult has already been taken."))
    if consult.status not in TAKEABLE_STATUSES:
        raise taken
    now = clock.now()
    try:
        # Conditional UPDATE on the status read: of many concurrent accepts one matches.
        transition(consult, ConsultStatus.ACCEPTED, specialist_id=specialist.id, accepted_at=now)
    except Conflict as exc:
        raise taken from exc
    _set_offer_status(offer, OfferStatus.ACCEPTED)
    _record_response_time(specialist.id, offer, now)
    withdraw_pending_offers(consult)
    payload = _consult_payload(consult) | {"specialist": specialist.name}
    notify(consult.created_by, "consult.accepted", payload,
           subject=lambda: _("%(name)s has taken consult %(ref)s", name=specialist.name,
                             ref=consult.reference),
           body=lambda: _("%(name)s will answer your consult %(ref)s: %(url)s",
                          name=specialist.name, ref=consult.reference,
                          url=consult_url(consult)))


def decline_consult(consult: Consult, specialist: User) -> None:
    """Decline an offer; once nobody is left to answer, the next candidates get it."""
    offer = _pending_offer(consult, specialist)
    _set_offer_status(offer, OfferStatus.DECLINED)
    _record_response_time(specialist.id, offer, clock.now())
    advance_if_stalled(consult.id, reason="all declined")


def _set_offer_status(offer: Offer, status: OfferStatus) -> None:
    result = db.session.execute(
        update(Offer)
        .where(Offer.id == offer.id, Offer.status == OfferStatus.PENDING)
        .values(status=status, responded_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(_("This offer has already been answered."))
    db.session.refresh(offer)
    record(f"offer.{status.value}", consult_id=offer.consult_id, obj=offer)


def withdraw_pending_offers(consult: Consult) -> None:
    """Withdraw every offer still waiting (the consult was taken or cancelled)."""
    db.session.execute(
        update(Offer)
        .where(Offer.consult_id == consult.id, Offer.status == OfferStatus.PENDING)
        .values(status=OfferStatus.WITHDRAWN, responded_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def has_pending_offer(consult: Consult, specialist: User) -> bool:
    return db.session.scalar(
        select(Offer.id).where(
            Offer.consult_id == consult.id,
            Offer.specialist_id == specialist.id,
            Offer.status == OfferStatus.PENDING,
        )
    ) is not None


def waiting_offers(consult: Consult) -> tuple[int, datetime | None]:
    """How many specialists are asked now and until when the last may answer: what the
    requesting clinic is told while it waits (never who they are)."""
    count, deadline = db.session.execute(
        select(func.count(Offer.id), func.max(Offer.expires_at)).where(
            Offer.consult_id == consult.id, Offer.status == OfferStatus.PENDING)
    ).one()
    return int(count), deadline


# ---------------------------------------------------------------- sweeping


def expire_due_offers(limit: int = 500) -> int:
    """Mark pending offers past their expiry as expired; return how many this call expired.

    Rows another sweeper has locked are skipped, and the UPDATE is conditional on
    'pending', so an offer is expired exactly once.
    """
    now = clock.now()
    due = list(db.session.scalars(
        select(Offer.id)
        .where(Offer.status == OfferStatus.PENDING, Offer.expires_at <= now)
        .order_by(Offer.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))
    if not due:
        return 0
    rows = db.session.execute(
        update(Offer)
        .where(Offer.id.in_(due), Offer.status == OfferStatus.PENDING)
        .values(status=OfferStatus.EXPIRED, responded_at=now)
        .returning(Offer.id, Offer.consult_id)
        .execution_options(synchronize_session=False)
    ).all()
    for offer_id, consult_id in rows:
        record("offer.expired", consult_id=consult_id, offer_id=offer_id)
    return len(rows)


def stalled_consult_ids(limit: int = 500) -> list[int]:
    """Offered consults with no offer left waiting (every one declined or expired)."""
    pending = select(Offer.id).where(Offer.consult_id == Consult.id,
                                     Offer.status == OfferStatus.PENDING).exists()
    return list(db.session.scalars(
        select(Consult.id).where(Consult.status == ConsultStatus.OFFERED, ~pending)
        .order_by(Consult.id).limit(limit)
    ))


def advance_if_stalled(consult_id: int, reason: str = "offers expired",
                       skip_locked: bool = False) -> bool:
    """Move a consult on when no offer is waiting any more; True if this call moved it."""
    consult = _lock_consult(consult_id, skip_locked=skip_locked)
    if consult is None or consult.status != ConsultStatus.OFFERED:
        return False
    # A new statement after taking the lock: sees whatever the previous holder committed.
    if _pending_count(consult_id):
        return False
    advance_consult(consult, reason=reason)
    return True


# Emergencies first, then the longest waiting: when one specialist comes back, the most
# pressing consults reach them first.
_URGENCY_ORDER = case((Consult.urgency == Urgency.EMERGENCY, 0),
                      (Consult.urgency == Urgency.URGENT, 1), else_=2)


def escalated_consult_ids(limit: int = 500, specialty_ids: list[int] | None = None
                          ) -> list[int]:
    """Escalated consults nobody has taken yet, most pressing first."""
    query = select(Consult.id).where(Consult.status == ConsultStatus.ESCALATED,
                                     Consult.specialist_id.is_(None))
    if specialty_ids is not None:
        query = query.where(Consult.specialty_id.in_(specialty_ids))
    return list(db.session.scalars(
        query.order_by(_URGENCY_ORDER, Consult.submitted_at, Consult.id).limit(limit)))


def reoffer_if_candidate(consult_id: int, reason: str = "a specialist became available",
                         skip_locked: bool = False) -> bool:
    """Offer an escalated consult again once the ranking finds someone not asked before.

    True if this call offered it. Nobody who declined, let an offer expire or was withdrawn
    is asked twice (the ranking leaves out everyone with an offer for the consult), and the
    new offer waits as long as a first offer of that urgency.
    """
    consult = db.session.get(Consult, consult_id)
    if consult is None or consult.status != ConsultStatus.ESCALATED:
        return False
    # Ranking first, without the lock: most sweeps find nobody, and then write nothing.
    if not rank_specialists(consult, limit=1):
        return False
    # A coordinator assigning it (or another sweeper) may hold the lock: with skip_locked we
    # leave it to them. The status is read again under the lock, so it is given out once.
    consult = _lock_consult(consult_id, skip_locked=skip_locked)
    if consult is None or consult.status != ConsultStatus.ESCALATED:
        return False
    offers = advance_consult(consult, reason=reason)
    if not offers:  # the candidate went away in between: it stays escalated, silently
        return False
    record("consult.reoffered", consult_id=consult.id, obj=consult, reason=reason,
           specialist_ids=[o.specialist_id for o in offers])
    payload = _consult_payload(consult)
    # No e-mail: the page of a coordinator who was alerted drops it from the escalated list.
    for person in coordinators():
        notify(person, "consult.reoffered", payload)
    return True


def reoffer_for_specialist(user_id: int, reason: str, limit: int = 20) -> int:
    """After a roster change that may make this specialist eligible: re-offer the escalated
    consults of their specialties now (the sweeper catches any beyond the limit)."""
    specialist = db.session.get(User, user_id)
    if specialist is None or specialist.role != Role.SPECIALIST:
        return 0
    specialty_ids = [s.id for s in specialist.specialties]
    if not specialty_ids:
        return 0
    return sum(reoffer_if_candidate(consult_id, reason=reason, skip_locked=True)
               for consult_id in escalated_consult_ids(limit, specialty_ids))


# ---------------------------------------------------------------- coordinators


def assign_consult(consult: Consult, specialist: User, coordinator: User, note: str = "") -> None:
    """A coordinator gives a consult to a specialist by hand, overriding the ranking."""
    if coordinator.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied(_("Only coordinators assign consults."))
    if specialist.role != Role.SPECIALIST or not specialist.active:
        raise InvalidInput(_("Choose an active specialist."))
    locked = _lock_consult(consult.id)
    if locked is None or locked.status not in TAKEABLE_STATUSES:
        raise Conflict(_("This consult has already been taken."))
    transition(consult, ConsultStatus.ACCEPTED, specialist_id=specialist.id,
               accepted_at=clock.now())
    withdraw_pending_offers(consult)
    record("consult.assigned", consult_id=consult.id, obj=consult, actor_id=coordinator.id,
           specialist_id=specialist.id, note=note.strip()[:500])
    payload = _consult_payload(consult)
    notify(specialist, "consult.assigned", payload,
           subject=lambda: _("Consult %(ref)s has been assigned to you", ref=consult.reference),
           body=lambda: _("A coordinator assigned consult %(ref)s to you: %(url)s",
                          ref=consult.reference,
                          url=consult_url(consult)))
    notify(consult.created_by, "consult.accepted", payload | {"specialist": specialist.name})
