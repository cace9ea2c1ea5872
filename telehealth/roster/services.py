"""Managing the roster: invitations, profiles, availability, leave, credentials, status."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import IO, Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Select, delete, func, or_, select, update

from telehealth import clock, uploads
from telehealth.accounts.models import Role, Specialty, User, UserLanguage, user_specialties
from telehealth.accounts.services import (
    check_new_password,
    create_user,
    find_user_by_email,
    hash_password,
)
from telehealth.audit.services import record
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n import formatting
from telehealth.i18n.formatting import local_datetime
from telehealth.matching.ranking import zone_or_none
from telehealth.matching.services import reoffer_for_specialist
from telehealth.roster.models import (
    EXPIRY_WARNING_DAYS,
    PROFILE_TRANSITIONS,
    AvailabilityWindow,
    CredentialStatus,
    Invite,
    LeavePeriod,
    ProfileStatus,
    SpecialistProfile,
)

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WINDOW_RE = re.compile(
    r"^\s*(mon|tue|wed|thu|fri|sat|sun)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", re.I)


def is_roster_manager(user: Any) -> bool:
    return bool(user.is_authenticated and user.role in (Role.COORDINATOR, Role.ADMIN))


def require_roster_manager(user: Any) -> None:
    """Coordinators and admins manage the roster; everyone else is refused."""
    if not is_roster_manager(user):
        raise PermissionDenied(_("Only coordinators manage the roster."))


def check_timezone(name: str) -> str:
    name = name.strip()
    if zone_or_none(name) is None:
        raise InvalidInput(_("%(zone)s is not a known time zone (use e.g. Europe/Paris).",
                             zone=name or "—"))
    return name


# ---------------------------------------------------------------- profiles


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


def get_specialist(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.role != Role.SPECIALIST:
        raise NotFound(_("No such specialist."))
    return user


def set_status(profile: SpecialistProfile, status: ProfileStatus, actor: User) -> None:
    """Approve, suspend or reactivate a specialist, as the transition table allows."""
    require_roster_manager(actor)
    old = profile.status
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
    if result.rowcount != 1:
        raise Conflict(_("Someone else changed this specialist a moment ago."))
    db.session.refresh(profile)
    record(f"roster.{status.value}", obj=profile, actor_id=actor.id, user_id=profile.user_id,
           old=old.value)
    if status == ProfileStatus.ACTIVE:
        reoffer_for_specialist(profile.user_id, reason="specialist approved or reactivated")


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


def profile_status_label(status: ProfileStatus) -> str:
    return {ProfileStatus.PENDING: _("pending approval"), ProfileStatus.ACTIVE: _("active"),
            ProfileStatus.SUSPENDED: _("suspended")}[status]


def credential_status_label(status: CredentialStatus) -> str:
    return {CredentialStatus.UNVERIFIED: _("not verified"),
            CredentialStatus.VERIFIED: _("verified"),
            CredentialStatus.REJECTED: _("rejected")}[status]


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
    reoffer_for_specialist(user.id, reason="specialist profile changed")
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


# ---------------------------------------------------------------- availability and leave


def parse_windows(text: str) -> list[tuple[int, int, int]]:
    """'mon 08:00-12:00; tue 14:00-18:00' -> [(0, 480, 720), (1, 840, 1080)] (local time)."""
    windows = []
    for item in re.split(r"[;\n]+", text):
        if not item.strip():
            continue
        match = _WINDOW_RE.match(item)
        if not match:
            raise InvalidInput(_("%(item)s is not a window like 'mon 08:00-12:00'.",
                                 item=item.strip()))
        day, h1, m1, h2, m2 = match.groups()
        start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
        if int(m1) > 59 or int(m2) > 59 or start >= 1440 or end > 1440 or start >= end:
            raise InvalidInput(_("%(item)s: the start must come before the end, within one day "
                                 "(24:00 at the latest).", item=item.strip()))
        windows.append((WEEKDAYS.index(day.lower()), start, end))
    return sorted(windows)


def format_windows(windows: list[AvailabilityWindow]) -> str:
    def hhmm(minute: int) -> str:
        return f"{minute // 60:02d}:{minute % 60:02d}"

    return "; ".join(f"{WEEKDAYS[w.weekday]} {hhmm(w.start_minute)}-{hhmm(w.end_minute)}"
                     for w in windows)


def set_windows(user: User, windows: list[tuple[int, int, int]], actor: User) -> None:
    """Replace a specialist's weekly availability (local time of their time zone)."""
    if not (is_roster_manager(actor) or actor.id == user.id):
        raise PermissionDenied(_("You cannot change this profile."))
    db.session.execute(delete(AvailabilityWindow).where(AvailabilityWindow.user_id == user.id))
    db.session.add_all(AvailabilityWindow(user_id=user.id, weekday=d, start_minute=s,
                                          end_minute=e) for d, s, e in windows)
    db.session.flush()
    record("roster.availability_changed", actor_id=actor.id, user_id=user.id,
           windows=len(windows))
    reoffer_for_specialist(user.id, reason="specialist availability changed")


def add_leave(user: User, first_day: date, last_day: date, reason: str,
              actor: User) -> LeavePeriod:
    """Record leave from the first to the last day inclusive, in the specialist's time zone."""
    if not (is_roster_manager(actor) or actor.id == user.id):
        raise PermissionDenied(_("You cannot change this profile."))
    if last_day < first_day:
        raise InvalidInput(_("The leave must end on or after its first day."))
    zone = formatting.zone(user.timezone)  # a broken stored zone must not break the page
    leave = LeavePeriod(
        user_id=user.id,
        starts_at=datetime.combine(first_day, time(0), tzinfo=zone),
        ends_at=datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=zone),
        reason=reason.strip()[:200],
    )
    db.session.add(leave)
    db.session.flush()
    record("roster.leave_added", obj=leave, actor_id=actor.id, user_id=user.id)
    return leave


def remove_leave(leave_id: int, actor: User) -> int:
    """Delete a leave period; returns the id of the specialist it belonged to."""
    leave = db.session.get(LeavePeriod, leave_id)
    # Permission before existence: someone who may not touch a leave must not learn from a
    # 404 that this id exists (or not).
    if not (is_roster_manager(actor) or (leave is not None and actor.id == leave.user_id)):
        raise PermissionDenied(_("You cannot change this profile."))
    if leave is None:
        raise NotFound(_("No such leave."))
    user_id = leave.user_id
    db.session.delete(leave)
    db.session.flush()
    record("roster.leave_removed", actor_id=actor.id, user_id=user_id)
    reoffer_for_specialist(user_id, reason="specialist leave removed")
    return user_id


# ---------------------------------------------------------------- credentials


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
        profile.document_stored_name, _digest = uploads.store(db.session, checked)
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
        reoffer_for_specialist(profile.user_id, reason="specialist credential verified")


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


# ---------------------------------------------------------------- invitations


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_invite(email: str, actor: User, user_id: int | None = None) -> tuple[Invite, str]:
    token = secrets.token_urlsafe(32)
    invite = Invite(email=email, token_hash=_hash_token(token), created_by_id=actor.id,
                    user_id=user_id, expires_at=clock.now() + timedelta(
                        hours=current_app.config["INVITE_EXPIRY_HOURS"]))
    db.session.add(invite)
    db.session.flush()
    return invite, token


def invite_specialist(email: str, actor: User) -> tuple[Invite, str]:
    """Create a one-time sign-up link; returns the invite and the token (shown once)."""
    require_roster_manager(actor)
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise InvalidInput(_("This is not an e-mail address."))
    if find_user_by_email(email) is not None:
        raise InvalidInput(_("A user with this e-mail address already exists."))
    invite, token = _new_invite(email, actor)
    record("roster.invited", obj=invite, actor_id=actor.id, email=email)
    return invite, token


# An account without an Argon2 hash (an imported one, say) has no password anyone can type.
_PASSWORD_PREFIX = "$argon2"


def has_password(user: User) -> bool:
    return user.password_hash.startswith(_PASSWORD_PREFIX)


def _live_link_exists() -> Any:
    return select(Invite.id).where(Invite.user_id == User.id, Invite.used_at.is_(None),
                                   Invite.expires_at > clock.now()).exists()


def specialists_waiting_for_a_link() -> list[User]:
    """Active specialists who have no password and no unused, unexpired link to set one."""
    return list(db.session.scalars(
        select(User).where(User.role == Role.SPECIALIST, User.active.is_(True),
                           User.password_hash.not_like(f"{_PASSWORD_PREFIX}%"),
                           ~_live_link_exists())
        .order_by(User.name, User.id)))


def live_password_link(user: User) -> Invite | None:
    """The newest unused, unexpired set-password link of this specialist, if any."""
    return db.session.scalar(
        select(Invite).where(Invite.user_id == user.id, Invite.used_at.is_(None),
                             Invite.expires_at > clock.now())
        .order_by(Invite.created_at.desc(), Invite.id.desc()).limit(1))


@dataclass
class PasswordLink:
    user: User
    invite: Invite
    url: str
    emailed: bool


def mail_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


def recipient_language(user: User) -> str:
    """The interface language to write to someone in: theirs, else the best one they read."""
    available = current_app.config["LANGUAGES"]
    if user.locale and user.locale in available:
        return user.locale
    for language in sorted(user.languages, key=lambda lang: -lang.level):
        if language.language.split("-")[0] in available:
            return language.language.split("-")[0]
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def create_password_link(user: User, actor: User, link_for: Callable[[str], str]
                         ) -> PasswordLink:
    """A one-time link for a specialist without a password; e-mailed when mail is set up.

    An older unused link of theirs stops working, so only the newest one is out there.
    """
    require_roster_manager(actor)
    if user.role != Role.SPECIALIST:
        raise NotFound(_("No such specialist."))
    if has_password(user):
        raise Conflict(_("%(name)s already has a password and can sign in.", name=user.name))
    if not user.active:
        raise Conflict(_("This account is deactivated."))
    now = clock.now()
    db.session.execute(
        update(Invite).where(Invite.user_id == user.id, Invite.used_at.is_(None),
                             Invite.expires_at > now)
        .values(expires_at=now).execution_options(synchronize_session=False))
    invite, token = _new_invite(user.email, actor, user_id=user.id)
    url = link_for(token)
    emailed = mail_configured()
    if emailed:
        _email_password_link(user, invite, url)
    record("roster.password_link_created", obj=invite, actor_id=actor.id, user_id=user.id,
           emailed=emailed)
    return PasswordLink(user=user, invite=invite, url=url, emailed=emailed)


def _email_password_link(user: User, invite: Invite, url: str) -> None:
    from telehealth.notifications.services import notify

    language = recipient_language(user)

    def in_their_language(text: Callable[[], str]) -> Callable[[], str]:
        def render() -> str:
            with force_locale(language):
                return text()
        return render

    notify(user, "roster.password_link", {},
           subject=in_their_language(lambda: _("Set your Telehealth password")),
           body=in_their_language(lambda: _(
               "Hello %(name)s,\n\nYou are on the Telehealth roster of volunteer specialists. "
               "Choose your password with this link; it works once, until %(when)s:\n\n"
               "%(url)s\n\nThen sign in with %(email)s.", name=user.name, url=url,
               email=user.email, when=local_datetime(invite.expires_at, language,
                                                     user.timezone))))


def find_invite(token: str) -> Invite:
    """The invite behind a sign-up link, if it is still usable."""
    invite = db.session.scalar(select(Invite).where(Invite.token_hash == _hash_token(token)))
    if invite is None:
        raise NotFound(_("This sign-up link is not valid."))
    if invite.used_at is not None:
        raise Conflict(_("This sign-up link has already been used."))
    if invite.expires_at <= clock.now():
        raise Conflict(_("This sign-up link has expired; ask a coordinator for a new one."))
    return invite


def _use_invite(token: str) -> Invite:
    invite = find_invite(token)
    # Conditional: two submissions of the same link cannot both use it.
    result = db.session.execute(
        update(Invite).where(Invite.id == invite.id, Invite.used_at.is_(None))
        .values(used_at=clock.now()).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict(_("This sign-up link has already been used."))
    return invite


def sign_up(token: str, name: str, password: str, timezone: str,
            languages: dict[str, int], specialties: list[Specialty]) -> User:
    """Create the invited specialist's account (pending approval) and use up the link."""
    invite = _use_invite(token)
    if invite.user_id is not None:
        raise NotFound(_("This sign-up link is not valid."))
    if not specialties:
        raise InvalidInput(_("Choose at least one specialty."))
    user = create_user(email=invite.email, name=name, password=password, role=Role.SPECIALIST,
                       timezone=check_timezone(timezone), specialties=specialties,
                       languages=languages)
    invite.user_id = user.id
    get_profile(user)
    record("roster.signed_up", obj=user, actor_id=user.id, invite_id=invite.id)
    return user


def set_password(token: str, name: str, password: str, timezone: str) -> User:
    """The specialist behind a set-password link chooses a password; the link is used up."""
    invite = _use_invite(token)
    user = db.session.get(User, invite.user_id) if invite.user_id is not None else None
    if user is None:
        raise NotFound(_("This sign-up link is not valid."))
    if has_password(user):
        raise Conflict(_("%(name)s already has a password and can sign in.", name=user.name))
    if not name.strip():
        raise InvalidInput(_("The name is empty."))
    check_new_password(password)
    user.name = name.strip()[:120]
    user.timezone = check_timezone(timezone)
    user.password_hash = hash_password(password)
    user.rotate_session_token()
    db.session.flush()
    record("roster.password_set", obj=user, actor_id=user.id, invite_id=invite.id)
    return user


# ---------------------------------------------------------------- the roster page


@dataclass
class RosterFilters:
    text: str = ""
    specialty_id: int | None = None
    language: str = ""
    status: str = ""
    load: str = ""  # "free" (no open consult), "busy" (some), "full" (at capacity)


def open_load_subquery() -> Any:
    return (select(func.count(Consult.id))
            .where(Consult.specialist_id == User.id, Consult.status == ConsultStatus.ACCEPTED)
            .correlate(User).scalar_subquery())


def roster_query(filters: RosterFilters) -> Select[Any]:
    """Specialists with their profile and open load, filtered in SQL."""
    load = open_load_subquery().label("open_consults")
    query = (select(User, SpecialistProfile, load)
             .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
             .where(User.role == Role.SPECIALIST))
    if filters.text:
        like = f"%{filters.text.strip().lower()}%"
        query = query.where(or_(func.lower(User.name).like(like),
                                func.lower(User.email).like(like),
                                func.lower(SpecialistProfile.subspecialty).like(like)))
    if filters.specialty_id:
        query = query.where(select(user_specialties.c.user_id).where(
            user_specialties.c.user_id == User.id,
            user_specialties.c.specialty_id == filters.specialty_id).exists())
    if filters.language:
        query = query.where(select(UserLanguage.id).where(
            UserLanguage.user_id == User.id,
            UserLanguage.language == filters.language.strip().lower()).exists())
    if filters.status in {s.value for s in ProfileStatus}:
        query = query.where(SpecialistProfile.status == ProfileStatus(filters.status))
    elif filters.status in ("expiring", "expired"):
        today = clock.now().date()
        if filters.status == "expired":
            query = query.where(SpecialistProfile.licence_expires_on < today)
        else:
            query = query.where(SpecialistProfile.licence_expires_on >= today,
                                SpecialistProfile.licence_expires_on <=
                                today + timedelta(days=EXPIRY_WARNING_DAYS))
    raw_load = open_load_subquery()
    if filters.load == "free":
        query = query.where(raw_load == 0)
    elif filters.load == "busy":
        query = query.where(raw_load > 0, raw_load < SpecialistProfile.capacity)
    elif filters.load == "full":
        query = query.where(raw_load >= SpecialistProfile.capacity)
    return query.order_by(User.name, User.id)


def ensure_profiles() -> None:
    """Give every specialist account a roster profile (accounts made before the roster)."""
    missing = select(User.id).where(User.role == Role.SPECIALIST, ~select(
        SpecialistProfile.id).where(SpecialistProfile.user_id == User.id).exists())
    for user_id in db.session.scalars(missing):
        db.session.add(SpecialistProfile(user_id=user_id, status=ProfileStatus.PENDING))
    db.session.flush()


# ---------------------------------------------------------------- load report


@dataclass
class LoadRow:
    user_id: int
    name: str
    last_30: int
    last_90: int


@dataclass
class LoadReport:
    rows: list[LoadRow]
    total_90: int
    busiest_count: int
    busiest_share: float  # 0..1 of the last 90 days' consults done by the busiest 10%


def load_report() -> LoadReport:
    """Each specialist's consults in the last 30 and 90 days, and the busiest 10%'s share."""
    now = clock.now()
    since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
    counts = (
        select(Consult.specialist_id.label("user_id"),
               func.count(Consult.id).filter(Consult.accepted_at >= since_30).label("last_30"),
               func.count(Consult.id).label("last_90"))
        .where(Consult.specialist_id.is_not(None), Consult.accepted_at >= since_90)
        .group_by(Consult.specialist_id)
        .subquery()
    )
    rows = [
        LoadRow(user_id=r.id, name=r.name, last_30=int(r.last_30 or 0),
                last_90=int(r.last_90 or 0))
        for r in db.session.execute(
            select(User.id, User.name, counts.c.last_30, counts.c.last_90)
            .outerjoin(counts, counts.c.user_id == User.id)
            .where(User.role == Role.SPECIALIST)
            .order_by(func.coalesce(counts.c.last_90, 0).desc(), User.name)
        )
    ]
    total = sum(r.last_90 for r in rows)
    busiest = max(1, -(-len(rows) // 10)) if rows else 0  # ceil(10%)
    share = (sum(r.last_90 for r in rows[:busiest]) / total) if total else 0.0
    return LoadReport(rows=rows, total_90=total, busiest_count=busiest, busiest_share=share)
