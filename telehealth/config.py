"""Configuration read from the environment (one class, overridable per test)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("TELEHEALTH_INSTANCE_DIR", BASE_DIR / "instance"))


def _persistent_secret_key() -> str:
    """Return SECRET_KEY from the environment, else one kept in the instance folder.

    A key generated per start would sign everybody out at each restart; a key committed
    to the repository would be public. The instance file is neither.
    """
    if key := os.environ.get("TELEHEALTH_SECRET_KEY"):
        return key
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    """Settings for a deployment; every value can be set with a TELEHEALTH_ variable."""

    SECRET_KEY = _persistent_secret_key()
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "TELEHEALTH_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'telehealth.sqlite'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    UPLOAD_DIR = os.environ.get("TELEHEALTH_UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    # One attachment at most; a whole request may carry a few of them plus the form.
    MAX_ATTACHMENT_BYTES = _env_int("TELEHEALTH_MAX_ATTACHMENT_BYTES", 8 * 1024 * 1024)
    MAX_CONTENT_LENGTH = _env_int("TELEHEALTH_MAX_REQUEST_BYTES", 20 * 1024 * 1024)
    MAX_IMAGE_PIXELS = _env_int("TELEHEALTH_MAX_IMAGE_PIXELS", 40_000_000)
    SOCKETIO_MESSAGE_QUEUE = os.environ.get("TELEHEALTH_REDIS_URL") or None
    BABEL_DEFAULT_LOCALE = os.environ.get("TELEHEALTH_DEFAULT_LOCALE", "en")
    BABEL_DEFAULT_TIMEZONE = "UTC"
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
    LANGUAGES = ["en", "fr", "es", "pt", "ar", "sw"]
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("TELEHEALTH_HTTPS", "") == "1"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session does
    ARGON2_TIME_COST = _env_int("TELEHEALTH_ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_KIB = _env_int("TELEHEALTH_ARGON2_MEMORY_KIB", 65536)
    # How many specialists a new consult is offered to while the full matcher is not in.
    OFFER_FANOUT = _env_int("TELEHEALTH_OFFER_FANOUT", 5)
    # Video calls: comma-separated STUN/TURN URLs; TURN credentials are minted per user with
    # the secret shared with coturn (use-auth-secret) and live VIDEO_TURN_TTL seconds.
    VIDEO_STUN_URLS = os.environ.get("TELEHEALTH_STUN_URLS", "")
    VIDEO_TURN_URLS = os.environ.get("TELEHEALTH_TURN_URLS", "")
    VIDEO_TURN_SECRET = os.environ.get("TELEHEALTH_TURN_SECRET", "")
    VIDEO_TURN_TTL = _env_int("TELEHEALTH_TURN_TTL", 3600)
    VIDEO_RECONNECT_GRACE_SECONDS = _env_int("TELEHEALTH_VIDEO_RECONNECT_GRACE", 20)
