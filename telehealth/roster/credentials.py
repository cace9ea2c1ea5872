"""Licences: what a specialist declares, what a coordinator verifies, when it expires."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import IO

from flask_babel import gettext as _

from telehealth import clock, signals, uploads
from telehealth.accounts.models import User
from telehealth.audit.services import record
from telehealth.errors import InvalidInput, PermissionDenied
from telehealth.extensions import db
from telehealth.roster.access import is_roster_manager, require_roster_manager
from telehealth.roster.models import (
    EXPIRY_WARNING_DAYS,
    CredentialStatus,
    SpecialistProfile,
)
from telehealth.roster.profiles import get_profile


@dataclass
class CredentialInput:
    licence_number: str
    licence_body: str
    licence_country: str
    expires_on: date


def update_credential(user: User, data: CredentialInput, document: IO[bytes] | None,
                      filename: str, actor: User) -> SpecialistProfile:
    """Record a licence (and its scan); any change needs verifying again."""
    if not (is_roster_manager(actor) or actor.id == user.id):
        raise PermissionDenied(_("You cannot change this profile."))
    profile = get_profile(user)
    country = data.licence_country.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise InvalidInput(_("The country must be a two-letter code such as FR or CA."))
    if not data.licence_number.strip() or not data.licence_body.strip():
        raise InvalidInput(_("Give the licence number and the body that issued it."))
    checked = uploads.check_upload(document, filename) if document is not None else None
    profile.licence_number = data.licence_number.strip()[:60]
    profile.licence_body = data.licence_body.strip()[:160]
    profile.licence_country = country
    profile.licence_expires_on = data.expires_on
    if checked is not None:
        profile.document_stored_name, _digest = uploads.store(db.session(), checked)
        profile.document_name = checked.original_name
    profile.credential_status = CredentialStatus.UNVERIFIED
    profile.verified_by_id = None
    profile.verified_at = None
    db.session.flush()
    record("roster.credential_changed", obj=profile, actor_id=actor.id, user_id=user.id)
    return profile


def verify_credential(profile: SpecialistProfile, actor: User, accept: bool) -> None:
    """A coordinator checks the licence: verified (eligible while in date) or rejected."""
    require_roster_manager(actor)
    if accept and (not profile.licence_number or profile.licence_expires_on is None):
        raise InvalidInput(_("There is no licence to verify yet."))
    if accept and profile.licence_expires_on is not None and \
            profile.licence_expires_on < clock.now().date():
        raise InvalidInput(_("This licence has expired; ask for the renewed one."))
    profile.credential_status = CredentialStatus.VERIFIED if accept else \
        CredentialStatus.REJECTED
    profile.verified_by_id = actor.id
    profile.verified_at = clock.now()
    db.session.flush()
    record("roster.credential_verified" if accept else "roster.credential_rejected",
           obj=profile, actor_id=actor.id, user_id=profile.user_id)
    if accept:
        signals.specialist_changed.send(profile.user_id,
                                        reason="specialist credential verified")


def credential_flag(profile: SpecialistProfile, today: date | None = None) -> str | None:
    """'expired', 'expiring' (within 30 days) or None."""
    today = today or clock.now().date()
    days = profile.credential_days_left(today)
    if days is None:
        return None
    if days < 0:
        return "expired"
    if days <= EXPIRY_WARNING_DAYS:
        return "expiring"
    return None
