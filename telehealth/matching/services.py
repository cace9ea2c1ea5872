"""Offering consults to specialists and taking them.

This first matcher offers a consult to the least busy specialists who have its specialty
and share a language with the clinic; ranking and the offer cascade come with the roster.
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from telehealth import clock
from telehealth.accounts.models import Role, User, UserLanguage, user_specialties
from telehealth.audit.services import record
from telehealth.consults.models import TAKEABLE_STATUSES, Consult, ConsultStatus
from telehealth.consults.services import transition
from telehealth.errors import Conflict, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.matching.models import Offer, OfferStatus


def eligible_specialists(consult: Consult, limit: int) -> list[User]:
    """Active specialists with the specialty and a shared language, least loaded first."""
    open_load = (
        select(func.count(Consult.id))
        .where(Consult.specialist_id == User.id, Consult.status == ConsultStatus.ACCEPTED)
        .correlate(User)
        .scalar_subquery()
    )
    shares_language = (
        select(UserLanguage.id)
        .where(UserLanguage.user_id == User.id, UserLanguage.language.in_(consult.language_list))
        .exists()
    )
    has_specialty = (
        select(user_specialties.c.user_id)
        .where(
            user_specialties.c.user_id == User.id,
            user_specialties.c.specialty_id == consult.specialty_id,
        )
        .exists()
    )
    already_offered = (
        select(Offer.id).where(Offer.consult_id == consult.id, Offer.specialist_id == User.id)
        .exists()
    )
    query = (
        select(User)
        .where(
            User.role == Role.SPECIALIST,
            User.active.is_(True),
            has_specialty,
            shares_language,
            ~already_offered,
        )
        .order_by(open_load, User.id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def offer_consult(consult: Consult) -> list[Offer]:
    """Offer a submitted consult; escalate it to coordinators when nobody is eligible."""
    specialists = eligible_specialists(consult, current_app.config["OFFER_FANOUT"])
    if not specialists:
        transition(consult, ConsultStatus.ESCALATED)
        record("consult.escalated", consult_id=consult.id, obj=consult, reason="no candidate")
        return []
    offers = [
        Offer(consult_id=consult.id, specialist_id=s.id, status=OfferStatus.PENDING)
        for s in specialists
    ]
    db.session.add_all(offers)
    db.session.flush()
    for offer in offers:
        record("offer.created", consult_id=consult.id, obj=offer, specialist_id=offer.specialist_id)
    transition(consult, ConsultStatus.OFFERED)
    return offers


def pending_offers_for(specialist: User) -> list[Offer]:
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


def accept_consult(consult: Consult, specialist: User) -> None:
    """Take an offered consult; when several accept at once exactly one gets it."""
    if specialist.role != Role.SPECIALIST:
        raise PermissionDenied(_("Only specialists take consults."))
    offer = _pending_offer(consult, specialist)
    if consult.status not in TAKEABLE_STATUSES:
        raise Conflict(_("This consult has already been taken."))
    try:
        transition(
            consult, ConsultStatus.ACCEPTED, specialist_id=specialist.id, accepted_at=clock.now()
        )
    except Conflict as exc:
        raise Conflict(_("This consult has already been taken.")) from exc
    _set_offer_status(offer, OfferStatus.ACCEPTED)
    withdraw_pending_offers(consult)


def decline_consult(consult: Consult, specialist: User) -> None:
    """Decline an offer; once nobody is left to answer, the consult goes to coordinators."""
    offer = _pending_offer(consult, specialist)
    _set_offer_status(offer, OfferStatus.DECLINED)
    still_pending = db.session.scalar(
        select(func.count(Offer.id)).where(
            Offer.consult_id == consult.id, Offer.status == OfferStatus.PENDING
        )
    )
    if not still_pending and consult.status == ConsultStatus.OFFERED:
        more = eligible_specialists(consult, current_app.config["OFFER_FANOUT"])
        if more:
            db.session.add_all(
                Offer(consult_id=consult.id, specialist_id=s.id, status=OfferStatus.PENDING)
                for s in more
            )
            db.session.flush()
        else:
            transition(consult, ConsultStatus.ESCALATED)
            record("consult.escalated", consult_id=consult.id, obj=consult,
                   reason="all declined")


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
