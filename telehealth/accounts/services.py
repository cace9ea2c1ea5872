"""Creating users, checking passwords, changing them."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User, UserLanguage
from telehealth.audit.services import record
from telehealth.clinics.models import Clinic
from telehealth.errors import InvalidInput
from telehealth.extensions import db
from telehealth.validation import check_language, check_timezone

MIN_PASSWORD_LENGTH = 10


@cache
def _hasher_for(time_cost: int, memory_cost: int) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)
    # Verified against when the e-mail is unknown, so both failures take the same time.
    return hasher, hasher.hash("not a real password")


def _hasher() -> tuple[PasswordHasher, str]:
    # Argon2id with its recommended cost in production; tests may lower it in config.
    return _hasher_for(current_app.config["ARGON2_TIME_COST"],
                       current_app.config["ARGON2_MEMORY_KIB"])


def hash_password(password: str) -> str:
    """Hash a password with Argon2id."""
    return _hasher()[0].hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher()[0].verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def authenticate(email: str, password: str) -> User | None:
    """Return the active user with these credentials, else None; audit either way."""
    user = find_user_by_email(email)
    ok = _verify(user.password_hash if user else _hasher()[1], password)
    if user is None or not ok or not user.active:
        record("login.failed", actor_id=user.id if user else None, email=email.strip()[:254])
        return None
    if _hasher()[0].check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = clock.now()
    record("login.succeeded", actor_id=user.id)
    return user


def sign_out(user: User) -> None:
    """End every session of this user (the cookie's token no longer matches)."""
    user.rotate_session_token()
    record("logout", actor_id=user.id)


def check_new_password(password: str) -> None:
    """Refuse a password that is too short (the one rule for every place that sets one)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            _("The password must have at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)
        )


def change_password(user: User, current_password: str, new_password: str) -> None:
    """Change a user's own password; every other session of theirs ends."""
    if not _verify(user.password_hash, current_password):
        raise InvalidInput(_("The current password is not right."))
    check_new_password(new_password)
    user.password_hash = hash_password(new_password)
    user.rotate_session_token()
    record("password.changed", obj=user)


def specialties_by_code(codes: list[str]) -> list[Specialty]:
    if not codes:
        return []
    return list(db.session.scalars(select(Specialty).where(Specialty.code.in_(codes))))


def create_user(
    *,
    email: str,
    name: str,
    password: str,
    role: Role,
    clinic: Clinic | None = None,
    timezone: str = "UTC",
    locale: str | None = None,
    specialties: list[Specialty] | None = None,
    languages: dict[str, int] | None = None,
) -> User:
    """Create an account; clinicians need a clinic, other roles have none."""
    email = email.strip().lower()
    if find_user_by_email(email) is not None:
        raise InvalidInput(_("A user with this e-mail address already exists."))
    if role == Role.CLINICIAN and clinic is None:
        raise InvalidInput(_("A clinician must belong to a clinic."))
    if role != Role.CLINICIAN:
        clinic = None
    check_new_password(password)
    # The same checks as the preferences form: seed data and imports cannot store a zone or a
    # language the pages cannot use.
    timezone = check_timezone(timezone)
    if locale is not None:
        locale = check_language(locale)
    user = User(
        email=email,
        name=name.strip(),
        password_hash=hash_password(password),
        role=role,
        clinic=clinic,
        timezone=timezone,
        locale=locale,
        specialties=list(specialties or []),
        languages=[UserLanguage(language=code, level=level) for code, level in
                   (languages or {}).items()],
    )
    db.session.add(user)
    db.session.flush()
    record("user.created", obj=user, role=role.value, email=email)
    return user


def update_user(user: User, *, role: Role, active: bool, clinic: Clinic | None) -> None:
    """Change a user's role, clinic or active flag; a change of role or access signs them out."""
    if role == Role.CLINICIAN and clinic is None:
        raise InvalidInput(_("A clinician must belong to a clinic."))
    changed_access = user.role != role or user.active != active
    if user.role != role:
        record("user.role_changed", obj=user, old=user.role.value, new=role.value)
    if user.active != active:
        record("user.activated" if active else "user.deactivated", obj=user)
    user.role = role
    user.active = active
    user.clinic = clinic if role == Role.CLINICIAN else None
    if changed_access:
        user.rotate_session_token()
