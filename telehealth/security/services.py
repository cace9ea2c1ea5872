"""Sign-in limits, completing a sign-in, and the optional TOTP second factor."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyotp
from flask import Response, after_this_request, current_app, request, session
from flask_babel import gettext as _
from flask_login import login_user
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import and_, delete, func, select, update

from telehealth import clock, crypto
from telehealth.accounts.models import User
from telehealth.audit.services import record
from telehealth.db_types import EncryptedString
from telehealth.errors import Unavailable
from telehealth.extensions import db
from telehealth.security.models import SignInAttempt
from telehealth.security.sessions import mark_active

logger = logging.getLogger(__name__)

PENDING_KEY = "_second_factor"
PENDING_SECONDS = 300


def _normalise(email: str) -> str:
    return email.strip().lower()[:254]


# OWASP's guidance against brute force without letting a stranger lock a person out:
# failures slow the account down progressively (never a fixed lock), and a browser that signed
# in to the account before (it holds a signed known-device cookie) is counted on its own, so
# only failures made on that browser can slow it down.
DEVICE_COOKIE = "th_known_device"
DEVICE_COOKIE_DAYS = 180
DEVICES_PER_COOKIE = 8  # a shared clinic computer serves several people
FIRST_DELAY_SECONDS = 60
PROGRESSION_HOURS = 24  # failures this recent (and since the last success) make the delay


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="known-device")


def _account_digest(email: str) -> str:
    # The cookie names accounts by a keyed digest: reading it tells nobody who signed in here.
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, _normalise(email).encode(), hashlib.sha256).hexdigest()[:16]


def _known_devices() -> dict[str, str]:
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return {}
    try:
        devices = _device_serializer().loads(raw, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadData:
        return {}
    return devices if isinstance(devices, dict) else {}


def known_device(email: str) -> str | None:
    """This browser's device id for the account, if it signed in to it before."""
    device = _known_devices().get(_account_digest(email))
    return device if isinstance(device, str) else None


def remember_device(email: str) -> None:
    """After a full sign-in: give this browser (or keep) its known-device cookie."""
    devices = _known_devices()
    digest = _account_digest(email)
    devices.pop(digest, None)
    devices[digest] = secrets.token_hex(8)  # a new id each time: old failures stay behind
    while len(devices) > DEVICES_PER_COOKIE:
        devices.pop(next(iter(devices)))
    value = _device_serializer().dumps(devices)

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_COOKIE_DAYS * 86400,
                            httponly=True, samesite="Lax",
                            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
        return response


def _progressive_wait(failures: list[datetime], now: datetime) -> int:
    """Seconds still to wait: none for the first few failures, then 1, 2, 4… minutes after
    the latest one, never more than the window."""
    config = current_app.config
    over = len(failures) - config["SIGN_IN_MAX_FAILURES_PER_ACCOUNT"]
    if over < 0:
        return 0
    delay = min(FIRST_DELAY_SECONDS * 2 ** min(over, 20),
                config["SIGN_IN_WINDOW_MINUTES"] * 60)
    return max(0, int((max(failures) + timedelta(seconds=delay) - now).total_seconds()) + 1)


def sign_in_wait_seconds(email: str, ip: str) -> int:
    """0 when this attempt may go ahead, else the seconds to wait (Retry-After).

    The account's failures from browsers it never signed in on delay each other; a known
    device's failures delay only that device; an address trying many accounts is stopped
    for the window.
    """
    config = current_app.config
    now = clock.now()
    email = _normalise(email)
    device = known_device(email)
    last_success: datetime | None = db.session.scalar(
        select(func.max(SignInAttempt.at)).where(SignInAttempt.email == email,
                                                 SignInAttempt.succeeded.is_(True))
    )
    since = now - timedelta(hours=PROGRESSION_HOURS)
    failures = select(SignInAttempt.at).where(
        SignInAttempt.succeeded.is_(False), SignInAttempt.email == email,
        SignInAttempt.at > (max(since, last_success) if last_success else since),
        SignInAttempt.device == device if device else SignInAttempt.device.is_(None))
    wait = _progressive_wait(list(db.session.scalars(failures)), now)
    window = now - timedelta(minutes=config["SIGN_IN_WINDOW_MINUTES"])
    by_address = db.session.scalar(
        select(func.count(SignInAttempt.id)).where(
            SignInAttempt.succeeded.is_(False), SignInAttempt.ip == ip, SignInAttempt.at > window)
    ) or 0
    if by_address >= config["SIGN_IN_MAX_FAILURES_PER_ADDRESS"]:
        wait = max(wait, retry_after_seconds())
    return wait


def note_attempt(email: str, ip: str, succeeded: bool) -> None:
    """Count one sign-in attempt (the caller commits); forget attempts older than a day.

    The audit trail keeps every attempt for good; this table only counts recent ones.
    """
    keep = max(timedelta(days=1),
               timedelta(minutes=current_app.config["SIGN_IN_WINDOW_MINUTES"]))
    db.session.execute(delete(SignInAttempt).where(SignInAttempt.at < clock.now() - keep))
    db.session.add(SignInAttempt(at=clock.now(), email=_normalise(email), ip=ip[:45],
                                 succeeded=succeeded, device=known_device(email)))


def note_blocked(email: str) -> None:
    record("login.blocked", email=email.strip()[:254])


def retry_after_seconds() -> int:
    return int(current_app.config["SIGN_IN_WINDOW_MINUTES"]) * 60


def complete_sign_in(user: User, ip: str, remember: bool = False) -> None:
    """Start the session of a user who passed every factor (the caller commits)."""
    config = current_app.config
    remember = remember and config["REMEMBER_ME_ENABLED"]
    login_user(user, remember=remember, duration=config["REMEMBER_COOKIE_DURATION"])
    session.pop(PENDING_KEY, None)
    mark_active()
    note_attempt(user.email, ip, succeeded=True)
    remember_device(user.email)


# ---------------------------------------------------------------- second factor


def start_second_factor(user: User, next_url: str, remember: bool) -> None:
    """Remember who passed the password step, for a few minutes, until the code is given."""
    session[PENDING_KEY] = {
        "user_id": user.id, "token": user.session_token, "next": next_url,
        "remember": remember, "at": int(clock.now().timestamp()),
    }


def pending_second_factor_user() -> tuple[User, dict] | None:
    """The user waiting to give a code, if the wait has not expired or their sessions ended."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if clock.now().timestamp() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None
    user = db.session.get(User, pending.get("user_id"))
    if user is None or not user.active or user.session_token != pending.get("token") \
            or not user.totp_secret:
        return None
    return user, pending


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["TOTP_ISSUER"]
    )


def matching_step(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step whose code this is (one step of clock drift allowed), else None.

    A step at or before the last one used is refused: a code works once.
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(clock.now())
    for step in (now_step - 1, now_step, now_step + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


class SecondFactorUnavailable(Unavailable):
    """The user's second factor cannot be checked: no configured key decrypts it."""


def totp_secret_of(user: User) -> str:
    """The user's TOTP secret in clear; SecondFactorUnavailable (and a log line) if unreadable.

    Never a way around the second factor: the caller refuses the sign-in.
    """
    if user.totp_secret is None:
        raise ValueError(f"user {user.id} has no second factor")
    try:
        return crypto.open_secret(user.totp_secret)
    except crypto.SecretUnreadable:
        logger.error(
            "user %s: no configured data key decrypts the TOTP secret (TELEHEALTH_DATA_KEY, "
            "TELEHEALTH_DATA_OLD_KEYS, or SECRET_KEY when no data key is set, changed since "
            "it was stored); their second-factor sign-in is refused", user.id)
        raise SecondFactorUnavailable(_(
            "Your second sign-in step cannot be checked at the moment. Please contact an "
            "administrator.")) from None


def check_code(user: User, code: str) -> bool:
    """Check a sign-in code and use it up; audit a failure."""
    step = matching_step(totp_secret_of(user), code, user.totp_last_step)
    if step is None:
        record("login.failed", actor_id=user.id, factor="totp")
        return False
    user.totp_last_step = step
    return True


def enable_totp(user: User, secret: str, code: str) -> bool:
    """Turn on the second factor once the person shows their app produces the right codes."""
    step = matching_step(secret, code, None)
    if step is None:
        return False
    user.totp_secret = crypto.seal(secret)
    user.totp_last_step = step
    record("totp.enabled", obj=user)
    return True


def reset_totp(user: User) -> None:
    """Turn a user's second factor off (lost phone); their sessions end with it."""
    user.totp_secret = None
    user.totp_last_step = None
    user.rotate_session_token()
    record("totp.reset", obj=user)


# ---------------------------------------------------------------- secrets at rest


@dataclass
class Rotation:
    """What `rotate_secrets` did: values re-encrypted, and the ones no key opens."""

    resealed: int = 0
    unreadable: list[str] = field(default_factory=list)  # "table.column id=…"


def rotate_secrets() -> Rotation:
    """Re-encrypt every encrypted column value under the current data key (the caller commits).

    Values no configured key opens are left as they are and listed.
    """
    result = Rotation()
    for table in db.metadata.sorted_tables:
        key = list(table.primary_key.columns)
        for column in table.columns:
            if not isinstance(column.type, EncryptedString):
                continue
            rows = db.session.execute(select(*key, column).where(column.is_not(None))).all()
            for *ids, sealed in rows:
                where = and_(*(c == v for c, v in zip(key, ids, strict=True)))
                try:
                    resealed = crypto.reseal(sealed)
                except crypto.SecretUnreadable:
                    ident = "/".join(map(str, ids))
                    result.unreadable.append(f"{table.name}.{column.name} id={ident}")
                    continue
                db.session.execute(update(table).where(where).values({column.name: resealed}))
                result.resealed += 1
    db.session.expire_all()  # loaded objects still hold the old ciphertext
    record("secrets.rotated", resealed=result.resealed, unreadable=len(result.unreadable))
    return result
