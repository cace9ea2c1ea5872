"""The offer cascade: offer to the best candidates, move on when they decline or stay silent,
escalate to coordinators when nobody is left, and let exactly one specialist take a consult.

Concurrency: every step that moves a consult on first locks its row (`FOR UPDATE`, with
`SKIP LOCKED` for sweepers on PostgreSQL) and then re-reads the offers in a new statement, so
two sweepers or a sweeper and a decline never both advance the same consult.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Select, case, exists, func, select, update
from sqlalchemy.orm import joinedload, selectinload

from telehealth import clock, signals
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.consults.models import TAKEABLE_STATUSES, Consult, ConsultStatus, Urgency
from telehealth.consults.services import (
    consult_summary,
    consult_url,
    is_requesting_clinician,
    transition,
    urgency_label,
)
from telehealth.db_types import rows_changed
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Superseded
from telehealth.extensions import db
from telehealth.i18n.formatting import local_deadline
from telehealth.matching.models import Offer, OfferStatus
from telehealth.matching.ranking import Candidate, offer_expiry, offer_fanout, rank_specialists
from telehealth.notifications.services import coordinators, notify
from telehealth.pagination import DEFAULT_PAGE_SIZE, Page, keyset_page
from telehealth.roster.models import SpecialistProfile

__all__ = [
    "Candidate", "ConsultTaken", "accept_consult", "advance_consult", "advance_stalled",
    "answer_by", "assign_consult", "connect_signals", "decline_consult",
    "escalated_consult_ids", "escalated_count", "escalation_queue", "expire_due_offers",
    "has_pending_offer", "lost_race", "offer_consult", "pending_offers_for",
    "pending_offers_page", "rank_specialists", "reoffer_candidates", "reoffer_for_specialist",
    "reoffer_if_candidate", "stalled_consult_ids", "taken_error", "withdraw_pending_offers",
]


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
    for offer, candidate in zip(offers, candidates, strict=True):
        record("offer.created", consult_id=consult.id, obj=offer,
               specialist_id=offer.specialist_id, expires_at=expires_at.isoformat(),
               wait_minutes=candidate.wait_minutes)
        specialist = db.session.get(User, offer.specialist_id)
        if specialist is None:  # pragma: no cover - the row was just ranked
            continue
        locale = specialist.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
        deadline = answer_by(expires_at, locale, specialist.timezone)
        notify(specialist, "offer.new", partial(_offer_summary, consult, deadline),
               subject=lambda: _("New consult offered to you: %(ref)s", ref=consult.reference),
               body=lambda: _("A %(urgency)s consult in %(specialty)s from %(clinic)s is "
                              "waiting for your answer: %(url)s",
                              urgency=urgency_label(consult.urgency),
                              specialty=consult.specialty.name, clinic=consult.clinic.name,
                              url=consult_url(consult)))
    return offers


def _offer_summary(consult: Consult, deadline: str) -> dict[str, object]:
    return consult_summary(consult) | {"deadline": deadline}


def _escalate(consult: Consult, reason: str) -> None:
    if consult.status == ConsultStatus.ESCALATED:
        return
    transition(consult, ConsultStatus.ESCALATED)
    record("consult.escalated", consult_id=consult.id, obj=consult, reason=reason)
    for person in coordinators():
        notify(person, "consult.escalated", lambda: consult_summary(consult),
               subject=lambda: _("Consult %(ref)s needs a specialist", ref=consult.reference),
               body=lambda: _("Nobody on the roster could take consult %(ref)s (%(specialty)s, "
                              "%(urgency)s). Please assign it: %(url)s",
                              ref=consult.reference, specialty=consult.specialty.name,
                              urgency=urgency_label(consult.urgency),
                              url=consult_url(consult)))


def _pending_offers_query(specialist: User) -> Select[tuple[Offer]]:
    return select(Offer).where(Offer.specialist_id == specialist.id,
                               Offer.status == OfferStatus.PENDING)


def pending_offers_for(specialist: User) -> list[Offer]:
    """The offers waiting for this specialist's answer, oldest first."""
    return list(db.session.scalars(
        _pending_offers_query(specialist).order_by(Offer.created_at, Offer.id)))


def pending_offers_page(specialist: User, cursor: str | None = None,
                        size: int = DEFAULT_PAGE_SIZE) -> Page[Offer]:
    """One page of the offers waiting for this specialist, oldest first, with their consults."""
    query = _pending_offers_query(specialist).options(
        joinedload(Offer.consult).joinedload(Consult.specialty),
        joinedload(Offer.consult).joinedload(Consult.clinic))
    return keyset_page(query, (Offer.created_at, Offer.id), cursor, size)


class ConsultTaken(Superseded):
    """A specialist tried to take a consult somebody else took first."""


def lost_race(consult_id: int, specialist: User) -> bool:
    """True when this specialist's offer was withdrawn because someone else took the consult."""
    return db.session.scalar(
        select(Offer.id).join(Consult, Consult.id == Offer.consult_id)
        .where(Offer.consult_id == consult_id, Offer.specialist_id == specialist.id,
               Offer.status == OfferStatus.WITHDRAWN, Consult.specialist_id.is_not(None),
               Consult.specialist_id != specialist.id)
    ) is not None


def taken_error() -> ConsultTaken:
    return ConsultTaken(_("This consult has already been taken."))


def _why_hidden(consult_id: int, user: User, action: str = "",
                **kwargs: Any) -> ConsultTaken | None:
    """A specialist whose accept lost the race no longer sees the consult: say it was taken."""
    if action == "accept" and lost_race(consult_id, user):
        return taken_error()
    return None


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
    if lost_race(consult.id, specialist):
        raise taken_error()
    offer = _pending_offer(consult, specialist)
    taken = taken_error()
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
    notify(consult.created_by, "consult.accepted",
           lambda: consult_summary(consult) | {"specialist": specialist.name},
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
    if rows_changed(result) != 1:
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


def _lock_consults(consult_ids: list[int]) -> list[Consult]:
    """Lock a batch of consults' rows in one statement, skipping those another transaction
    holds, and load their specialty and clinic in one statement each (the cards need them)."""
    return list(db.session.scalars(
        select(Consult).where(Consult.id.in_(consult_ids)).order_by(Consult.id)
        .with_for_update(skip_locked=True, of=Consult)
        .options(selectinload(Consult.specialty), selectinload(Consult.clinic))
        .execution_options(populate_existing=True)))


def advance_stalled(consult_ids: list[int], reason: str = "offers expired") -> int:
    """advance_if_stalled() for a batch, in the caller's one transaction: one statement locks
    the batch, one finds which still have an offer waiting, then each stalled consult costs
    its ranking plus the writes of its new offers. Returns how many this call moved."""
    consults = [c for c in _lock_consults(consult_ids) if c.status == ConsultStatus.OFFERED]
    if not consults:
        return 0
    waiting = set(db.session.scalars(
        select(Offer.consult_id).distinct()
        .where(Offer.consult_id.in_([c.id for c in consults]),
               Offer.status == OfferStatus.PENDING)))
    stalled = [c for c in consults if c.id not in waiting]
    for consult in stalled:
        advance_consult(consult, reason=reason)
    return len(stalled)


def reoffer_candidates(consult_ids: list[int],
                       reason: str = "a specialist became available") -> int:
    """reoffer_if_candidate() for a batch: the consults are read in one statement, then each
    costs one ranking (and, rarely, the re-offer). Returns how many were offered again."""
    db.session.scalars(select(Consult).where(Consult.id.in_(consult_ids))
                       .options(selectinload(Consult.specialty),
                                selectinload(Consult.clinic))).all()
    return sum(reoffer_if_candidate(consult_id, reason=reason, skip_locked=True)
               for consult_id in consult_ids)


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


def urgency_rank(urgency: Urgency) -> int:
    """The position _URGENCY_ORDER gives an urgency in SQL, computed in Python (cursors)."""
    return {Urgency.EMERGENCY: 0, Urgency.URGENT: 1}.get(urgency, 2)


def escalation_queue(specialty_id: int | None = None, cursor: str | None = None,
                     size: int = DEFAULT_PAGE_SIZE) -> Page[Consult]:
    """One page of the escalated consults nobody has taken, most pressing first."""
    query = (select(Consult).where(Consult.status == ConsultStatus.ESCALATED,
                                   Consult.specialist_id.is_(None))
             .options(joinedload(Consult.specialty), joinedload(Consult.clinic)))
    if specialty_id is not None:
        query = query.where(Consult.specialty_id == specialty_id)
    return keyset_page(query, (_URGENCY_ORDER, Consult.submitted_at, Consult.id), cursor, size,
                       key_of=lambda c: (urgency_rank(c.urgency), c.submitted_at, c.id))


def escalated_count() -> int:
    """How many escalated consults wait for a coordinator (one aggregate)."""
    return db.session.scalar(select(func.count(Consult.id)).where(
        Consult.status == ConsultStatus.ESCALATED, Consult.specialist_id.is_(None))) or 0


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
    # No e-mail: the page of a coordinator who was alerted drops it from the escalated list.
    for person in coordinators():
        notify(person, "consult.reoffered", lambda: consult_summary(consult))
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
    notify(specialist, "consult.assigned", lambda: consult_summary(consult),
           subject=lambda: _("Consult %(ref)s has been assigned to you", ref=consult.reference),
           body=lambda: _("A coordinator assigned consult %(ref)s to you: %(url)s",
                          ref=consult.reference,
                          url=consult_url(consult)))
    notify(consult.created_by, "consult.accepted",
           lambda: consult_summary(consult) | {"specialist": specialist.name})


# ---------------------------------------------------------------- reacting to other features


def _offered_to(user: User) -> Any:
    """A specialist also reads the consults offered to them while the offer waits."""
    return exists().where(Offer.consult_id == Consult.id, Offer.specialist_id == user.id,
                          Offer.status == OfferStatus.PENDING)


def _consult_page(consult: Consult, user: User) -> dict[str, Any]:
    # The requesting clinic sees, in general terms, whom its request waits for and until when.
    waiting = waiting_offers(consult) if is_requesting_clinician(user, consult) else (0, None)
    return {"has_offer": user.role == Role.SPECIALIST and has_pending_offer(consult, user),
            "waiting": waiting}


def _consult_actions(_sender: object) -> dict[str, Any]:
    return {"accept": accept_consult, "decline": decline_consult}


def _reoffer_for_specialist(user_id: int, reason: str) -> None:
    reoffer_for_specialist(user_id, reason=reason)


def connect_signals() -> None:
    """Matching reacts to consults being submitted or cancelled and to roster changes."""
    signals.consult_submitted.connect(offer_consult)
    signals.consult_cancelled.connect(withdraw_pending_offers)
    signals.specialist_changed.connect(_reoffer_for_specialist)
    signals.consult_visibility.connect(_offered_to)
    signals.consult_page.connect(_consult_page)
    signals.consult_actions.connect(_consult_actions)
    signals.consult_hidden.connect(_why_hidden)
