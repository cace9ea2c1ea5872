"""A specialist's profile: status (approval), specialties, languages, capacity."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from telehealth import clock, signals
from telehealth.accounts.models import Role, Specialty, User, UserLanguage, user_specialties
from telehealth.audit.services import record
from telehealth.db_types import known, rows_changed
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n.services import check_timezone, label_of
from telehealth.roster.access import is_roster_manager, require_roster_manager
from telehealth.roster.models import (
    PROFILE_TRANSITIONS,
    CredentialStatus,
    ProfileStatus,
    SpecialistProfile,
)


def get_profile(user: User) -> SpecialistProfile:
    """The roster profile of a specialist, created (pending) the first time it is needed."""
    if user.role != Role.SPECIALIST:
        raise NotFound(_("This person is not a specialist."))
    profile = db.session.scalar(select(SpecialistProfile).where(
        SpecialistProfile.user_id == user.id))
    if profile is None:
        profile = SpecialistProfile(user_id=user.id, user=user, status=ProfileStatus.PENDING)
        db.session.add(profile)
        db.session.flush()
    return profile


def assignable_specialists(specialty_id: int, limit: int = 300) -> list[User]:
    """Active volunteers of the specialty a coordinator may assign by hand, by name (the
    service still refuses one who cannot take the case, with the reason).

    Only the specialty's: it is read through its index, where the whole roster (10,000
    volunteers) would be a scan and a page of options; anyone else is named by e-mail
    (`specialist_by_email`)."""
    rows = db.session.scalars(
        select(User)
        .join(user_specialties, user_specialties.c.user_id == User.id)
        .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
        .where(user_specialties.c.specialty_id == specialty_id,
               User.role == Role.SPECIALIST, User.active.is_(True),
               SpecialistProfile.status == ProfileStatus.ACTIVE)
        .order_by(User.name, User.id).limit(limit))
    return list(rows)


def specialist_by_email(email: str) -> User:
    """The specialist with this e-mail address (404 with a clear message otherwise)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.role != Role.SPECIALIST:
        raise NotFound(_("No specialist has the e-mail address %(email)s.",
                         email=email.strip()[:254]))
    return user


def get_specialist(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.role != Role.SPECIALIST:
        raise NotFound(_("No such specialist."))
    return user


def set_status(profile: SpecialistProfile, status: ProfileStatus, actor: User) -> None:
    """Approve, suspend or reactivate a specialist, as the transition table allows."""
    require_roster_manager(actor)
    old = known(profile.status)
    if status not in PROFILE_TRANSITIONS[old]:
        raise Conflict(_("A specialist who is %(old)s cannot become %(new)s.",
                         old=profile_status_label(old), new=profile_status_label(status)))
    result = db.session.execute(
        update(SpecialistProfile)
        .where(SpecialistProfile.id == profile.id, SpecialistProfile.status == old)
        .values(status=status, approved_at=clock.now() if status == ProfileStatus.ACTIVE and
                profile.approved_at is None else profile.approved_at)
        .execution_options(synchronize_session=False)
    )
    if rows_changed(result) != 1:
        raise Conflict(_("Someone else changed this specialist a moment ago."))
    db.session.refresh(profile)
    record(f"roster.{status.value}", obj=profile, actor_id=actor.id, user_id=profile.user_id,
           old=old.value)
    if status == ProfileStatus.ACTIVE:
        signals.specialist_changed.send(profile.user_id,
                                        reason="specialist approved or reactivated")


# What each roster button does: the status it starts from and the one it leads to.
STATUS_ACTIONS: dict[str, tuple[ProfileStatus, ProfileStatus]] = {
    "approve": (ProfileStatus.PENDING, ProfileStatus.ACTIVE),
    "suspend": (ProfileStatus.ACTIVE, ProfileStatus.SUSPENDED),
    "reactivate": (ProfileStatus.SUSPENDED, ProfileStatus.ACTIVE),
}


def apply_status_action(profile: SpecialistProfile, action: str, actor: User) -> None:
    """Approve a pending specialist, suspend an active one, reactivate a suspended one."""
    start, end = STATUS_ACTIONS[action]
    if profile.status != start and not (action == "suspend" and
                                        profile.status == ProfileStatus.PENDING):
        raise Conflict(_("A specialist who is %(old)s cannot become %(new)s this way.",
                         old=profile_status_label(profile.status),
                         new=profile_status_label(end)))
    set_status(profile, end, actor)


# Lazy strings made once: a roster page asks for a label per row (see consults.services).
PROFILE_STATUS_LABELS = {ProfileStatus.PENDING: _l("pending approval"),
                         ProfileStatus.ACTIVE: _l("active"),
                         ProfileStatus.SUSPENDED: _l("suspended")}
CREDENTIAL_STATUS_LABELS = {CredentialStatus.UNVERIFIED: _l("not verified"),
                            CredentialStatus.VERIFIED: _l("verified"),
                            CredentialStatus.REJECTED: _l("rejected")}


def profile_status_label(status: ProfileStatus) -> str:
    return label_of(PROFILE_STATUS_LABELS, status)


def credential_status_label(status: CredentialStatus) -> str:
    return label_of(CREDENTIAL_STATUS_LABELS, status)


@dataclass
class ProfileInput:
    name: str
    timezone: str
    subspecialty: str
    capacity: int
    specialties: list[Specialty]
    languages: dict[str, int]


def parse_languages(text: str) -> dict[str, int]:
    """'fr:3 en:2' (or 'fr, en') -> {'fr': 3, 'en': 2}; level 1 basic .. 3 fluent."""
    result: dict[str, int] = {}
    for item in re.split(r"[\s,;]+", text.strip()):
        if not item:
            continue
        code, _sep, level_text = item.partition(":")
        code = code.strip().lower()
        if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", code):
            raise InvalidInput(_("%(code)s is not a language code (use e.g. fr or pt-BR).",
                                 code=item))
        level = 3
        if level_text:
            if level_text not in ("1", "2", "3"):
                raise InvalidInput(_("The level of %(code)s must be 1, 2 or 3.", code=code))
            level = int(level_text)
        result[code] = level
    if not result:
        raise InvalidInput(_("Give at least one language."))
    return result


def format_languages(user: User) -> str:
    return " ".join(f"{lang.language}:{lang.level}" for lang in user.languages)


def update_profile(user: User, data: ProfileInput, actor: User) -> SpecialistProfile:
    """Change a specialist's profile (coordinators, or the specialist on their own profile)."""
    if not (is_roster_manager(actor) or actor.id == user.id):
        raise PermissionDenied(_("You cannot change this profile."))
    profile = get_profile(user)
    if not data.name.strip():
        raise InvalidInput(_("The name is empty."))
    if not 0 <= data.capacity <= 100:
        raise InvalidInput(_("The capacity must be between 0 and 100 open consults."))
    if not data.specialties:
        raise InvalidInput(_("Choose at least one specialty."))
    user.name = data.name.strip()
    user.timezone = check_timezone(data.timezone)
    user.specialties = list(data.specialties)
    _set_languages(user, data.languages)
    profile.subspecialty = data.subspecialty.strip()[:120]
    profile.capacity = data.capacity
    db.session.flush()
    record("roster.profile_changed", obj=profile, actor_id=actor.id, user_id=user.id)
    signals.specialist_changed.send(user.id, reason="specialist profile changed")
    return profile


def _set_languages(user: User, languages: dict[str, int]) -> None:
    existing = {lang.language: lang for lang in user.languages}
    for code in list(existing):
        if code not in languages:
            user.languages.remove(existing[code])
    for code, level in languages.items():
        if code in existing:
            existing[code].level = level
        else:
            user.languages.append(UserLanguage(language=code, level=level))
