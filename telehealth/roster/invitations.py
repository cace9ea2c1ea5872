"""Invitations and password links: how a specialist gets an account on the roster."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User
from telehealth.accounts.services import (
    check_new_password,
    create_user,
    find_user_by_email,
    hash_password,
)
from telehealth.audit.services import record
from telehealth.crypto import hash_token
from telehealth.db_types import rows_changed
from telehealth.errors import Conflict, InvalidInput, NotFound
from telehealth.extensions import db
from telehealth.i18n.formatting import local_datetime
from telehealth.i18n.services import check_timezone
from telehealth.notifications.services import notify
from telehealth.roster.access import require_roster_manager
from telehealth.roster.models import (
    Invite,
)
from telehealth.roster.profiles import get_profile


def _new_invite(email: str, actor: User, user_id: int | None = None) -> tuple[Invite, str]:
    token = secrets.token_urlsafe(32)
    invite = Invite(email=email, token_hash=hash_token(token), created_by_id=actor.id,
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


def count_waiting_for_a_link() -> int:
    """How many specialists_waiting_for_a_link() would return, as one aggregate."""
    return db.session.scalar(
        select(func.count(User.id)).where(
            User.role == Role.SPECIALIST, User.active.is_(True),
            User.password_hash.not_like(f"{_PASSWORD_PREFIX}%"), ~_live_link_exists())) or 0


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
    invite = db.session.scalar(select(Invite).where(Invite.token_hash == hash_token(token)))
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
    if rows_changed(result) != 1:
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
