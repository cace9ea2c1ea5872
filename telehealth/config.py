"""Configuration read from the environment (one class, overridable per test)."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("TELEHEALTH_INSTANCE_DIR", BASE_DIR / "instance"))


def persistent_secret_key() -> str:
    """The SECRET_KEY kept in the instance folder, made on first use (by create_app).

    A key generated per start would sign everybody out at each restart; a key committed
    to the repository would be public. The instance file is neither. Importing this module
    writes nothing: only an app built without TELEHEALTH_SECRET_KEY creates the file.
    """
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

    SECRET_KEY = os.environ.get("TELEHEALTH_SECRET_KEY") or None  # None: the instance file
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "TELEHEALTH_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'telehealth.sqlite'}"
    )
    # Threads of the one gunicorn worker (README, Production). Each may hold a database
    # connection, so the pool has one per thread (plus a few for the sweeper and sockets'
    # bursts) and no request waits for another's connection.
    SERVER_THREADS = _env_int("TELEHEALTH_THREADS", 32)
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_pre_ping": True,
        "pool_size": _env_int("TELEHEALTH_DB_POOL_SIZE", SERVER_THREADS),
        "max_overflow": _env_int("TELEHEALTH_DB_MAX_OVERFLOW", 8),
        "pool_timeout": _env_int("TELEHEALTH_DB_POOL_TIMEOUT", 30),
    }
    # Seconds a save waits for a lock another writer holds (the audit chain's, a row's)
    # before it gives up with a "try again" answer: a writer that stalled mid-commit (a
    # stopped process) must not block every other one for ever. PostgreSQL: lock_timeout
    # while the audit chain is locked; SQLite: the busy timeout of every connection.
    DATABASE_LOCK_TIMEOUT_SECONDS = _env_int("TELEHEALTH_DB_LOCK_TIMEOUT", 5)
    UPLOAD_DIR = os.environ.get("TELEHEALTH_UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    # One attachment at most; a whole request may carry a few of them plus the form.
    MAX_ATTACHMENT_BYTES = _env_int("TELEHEALTH_MAX_ATTACHMENT_BYTES", 8 * 1024 * 1024)
    MAX_CONTENT_LENGTH = _env_int("TELEHEALTH_MAX_REQUEST_BYTES", 20 * 1024 * 1024)
    MAX_IMAGE_PIXELS = _env_int("TELEHEALTH_MAX_IMAGE_PIXELS", 40_000_000)
    SOCKETIO_MESSAGE_QUEUE = os.environ.get("TELEHEALTH_REDIS_URL") or None
    # Names this deployment's Socket.IO channel and Redis keys, so that deployments sharing
    # one Redis server never see each other's live events or calls (default "telehealth";
    # the channel also carries the Redis database number).
    DEPLOYMENT_NAME = os.environ.get("TELEHEALTH_DEPLOYMENT_NAME") or None
    BABEL_DEFAULT_LOCALE = os.environ.get("TELEHEALTH_DEFAULT_LOCALE", "en")
    BABEL_DEFAULT_TIMEZONE = "UTC"
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "translations")
    LANGUAGES = ["en", "fr", "es", "pt", "ar", "sw"]
    # A LibreTranslate-compatible service; unset, machine translation is absent from the pages.
    MACHINE_TRANSLATION_URL = os.environ.get("TELEHEALTH_MACHINE_TRANSLATION_URL") or None
    MACHINE_TRANSLATION_API_KEY = os.environ.get("TELEHEALTH_MACHINE_TRANSLATION_API_KEY") or None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = os.environ.get("TELEHEALTH_HTTPS", "") == "1"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session does
    ARGON2_TIME_COST = _env_int("TELEHEALTH_ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_KIB = _env_int("TELEHEALTH_ARGON2_MEMORY_KIB", 65536)
    # Trust (telehealth/security): sessions, sign-in limits, second factor, audit chain.
    IDLE_TIMEOUT_MINUTES = _env_int("TELEHEALTH_IDLE_TIMEOUT_MINUTES", 30)
    REMEMBER_ME_ENABLED = os.environ.get("TELEHEALTH_REMEMBER_ME", "") == "1"
    REMEMBER_COOKIE_DURATION = timedelta(hours=_env_int("TELEHEALTH_REMEMBER_HOURS", 12))
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    SIGN_IN_WINDOW_MINUTES = _env_int("TELEHEALTH_SIGN_IN_WINDOW_MINUTES", 15)
    SIGN_IN_MAX_FAILURES_PER_ACCOUNT = _env_int("TELEHEALTH_SIGN_IN_MAX_PER_ACCOUNT", 5)
    SIGN_IN_MAX_FAILURES_PER_ADDRESS = _env_int("TELEHEALTH_SIGN_IN_MAX_PER_ADDRESS", 30)
    # Roles that must use a second factor, e.g. "admin,coordinator"; empty: optional for all.
    TOTP_REQUIRED_ROLES = [r for r in os.environ.get("TELEHEALTH_TOTP_REQUIRED_ROLES",
                                                     "").split(",") if r]
    TOTP_ISSUER = os.environ.get("TELEHEALTH_TOTP_ISSUER", "Telehealth")
    HSTS = SESSION_COOKIE_SECURE
    # Extra CSP sources per directive, e.g. {"connect-src": ["wss://media.example.org"]}.
    CSP_EXTRA: dict[str, list[str]] = {}
    AUDIT_CHAIN_KEY = os.environ.get("TELEHEALTH_AUDIT_CHAIN_KEY") or None
    # Signed checkpoints of the audit chain's end, kept outside the database (audit/checkpoints.py):
    # the key is never the database's nor derived from it; unset, a key file is made once.
    AUDIT_CHECKPOINT_KEY = os.environ.get("TELEHEALTH_AUDIT_CHECKPOINT_KEY") or None
    AUDIT_CHECKPOINT_KEY_FILE = os.environ.get("TELEHEALTH_AUDIT_CHECKPOINT_KEY_FILE",
                                               str(INSTANCE_DIR / "audit_checkpoint_key"))
    AUDIT_CHECKPOINT_FILE = os.environ.get("TELEHEALTH_AUDIT_CHECKPOINT_FILE",
                                           str(INSTANCE_DIR / "audit_checkpoints.jsonl"))
    AUDIT_CHECKPOINT_INTERVAL = float(os.environ.get("TELEHEALTH_AUDIT_CHECKPOINT_INTERVAL", 2))
    # A copy of each checkpoint: /dev/log, udp://host:514 or tcp://host:601; empty: none.
    AUDIT_CHECKPOINT_SYSLOG = os.environ.get("TELEHEALTH_AUDIT_CHECKPOINT_SYSLOG", "")
    # Encrypts secrets at rest (TOTP seeds); unset, a key derived from SECRET_KEY. Earlier keys
    # (data keys or SECRET_KEYs, comma-separated) still decrypt until `flask security
    # rotate-secrets` has re-encrypted everything under the current one.
    DATA_KEY = os.environ.get("TELEHEALTH_DATA_KEY") or None
    DATA_OLD_KEYS = [k.strip() for k in os.environ.get("TELEHEALTH_DATA_OLD_KEYS", "").split(",")
                     if k.strip()]
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted; without
    # this, every visitor has the proxy's address and the per-address sign-in limit is shared.
    TRUSTED_PROXIES = _env_int("TELEHEALTH_TRUSTED_PROXIES", 0)
    # The offer cascade (matching): minutes an offer waits per urgency, specialists asked at once.
    OFFER_EXPIRY_MINUTES = {
        "emergency": _env_int("TELEHEALTH_OFFER_MINUTES_EMERGENCY", 15),
        "urgent": _env_int("TELEHEALTH_OFFER_MINUTES_URGENT", 120),
        "routine": _env_int("TELEHEALTH_OFFER_MINUTES_ROUTINE", 24 * 60),
    }
    OFFER_FANOUT_BY_URGENCY = {
        "emergency": _env_int("TELEHEALTH_OFFER_FANOUT_EMERGENCY", 3), "urgent": 1, "routine": 1,
    }
    # Seconds between two runs of the in-app sweeper; 0 leaves it to `flask --app wsgi sweep`.
    SWEEPER_INTERVAL_SECONDS = _env_int("TELEHEALTH_SWEEPER_INTERVAL", 30)
    INVITE_EXPIRY_HOURS = _env_int("TELEHEALTH_INVITE_EXPIRY_HOURS", 72)
    # Links in e-mails sent outside a request (sweeper), e.g. https://telehealth.example.org
    PUBLIC_BASE_URL = os.environ.get("TELEHEALTH_PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    MAIL_SERVER = os.environ.get("TELEHEALTH_MAIL_SERVER", "")  # empty: no e-mail
    MAIL_PORT = _env_int("TELEHEALTH_MAIL_PORT", 25)
    MAIL_USE_TLS = os.environ.get("TELEHEALTH_MAIL_TLS", "") == "1"
    MAIL_USERNAME = os.environ.get("TELEHEALTH_MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("TELEHEALTH_MAIL_PASSWORD", "")
    MAIL_SENDER = os.environ.get("TELEHEALTH_MAIL_SENDER", "Telehealth <noreply@localhost>")
    MAIL_TIMEOUT = _env_int("TELEHEALTH_MAIL_TIMEOUT", 10)
    # Video calls: comma-separated STUN/TURN URLs; TURN credentials are minted per user with
    # the secret shared with coturn (use-auth-secret) and live VIDEO_TURN_TTL seconds.
    VIDEO_STUN_URLS = os.environ.get("TELEHEALTH_STUN_URLS", "")
    VIDEO_TURN_URLS = os.environ.get("TELEHEALTH_TURN_URLS", "")
    VIDEO_TURN_SECRET = os.environ.get("TELEHEALTH_TURN_SECRET", "")
    VIDEO_TURN_TTL = _env_int("TELEHEALTH_TURN_TTL", 3600)
    VIDEO_RECONNECT_GRACE_SECONDS = _env_int("TELEHEALTH_VIDEO_RECONNECT_GRACE", 20)
    # "Join call" shows on the consult from this many minutes before an agreed call time until
    # this many minutes after it (and whenever a call is in progress); "Call now" is always there.
    VIDEO_JOIN_EARLY_MINUTES = _env_int("TELEHEALTH_VIDEO_JOIN_EARLY_MINUTES", 10)
    VIDEO_JOIN_LATE_MINUTES = _env_int("TELEHEALTH_VIDEO_JOIN_LATE_MINUTES", 60)
    # Several processes ("nodes"): each call lives on one node, found in a directory shared
    # through TELEHEALTH_REDIS_URL. A node's public base URL for call sockets (a port or a path
    # of its own behind the reverse proxy); unset: pages open their socket on their own origin.
    VIDEO_NODE_URL = os.environ.get("TELEHEALTH_VIDEO_NODE_URL") or None
    # Other origins whose call pages may open a socket on this node (comma-separated), e.g.
    # the other nodes' when they serve pages too; the public site's is always allowed.
    VIDEO_ALLOWED_ORIGINS = os.environ.get("TELEHEALTH_VIDEO_ALLOWED_ORIGINS", "")
    # Seconds a dead node's calls stay claimed before another node may take them.
    VIDEO_DIRECTORY_TTL_SECONDS = _env_int("TELEHEALTH_VIDEO_DIRECTORY_TTL", 30)
    # Pre-call check: each probe connection closes after this many seconds; how many may be
    # open at once per user and in this process (each costs a peer connection, ~11 MB).
    VIDEO_PROBE_TIMEOUT = _env_int("TELEHEALTH_VIDEO_PROBE_TIMEOUT", 30)
    VIDEO_PROBE_PER_USER = _env_int("TELEHEALTH_VIDEO_PROBE_PER_USER", 2)
    VIDEO_PROBE_TOTAL = _env_int("TELEHEALTH_VIDEO_PROBE_TOTAL", 20)
    # Case conference rooms: each receiver gets the video of the last N speakers and the audio
    # of the loudest few; the room opens this many minutes after the session's end at most.
    CONFERENCE_LAST_N = _env_int("TELEHEALTH_CONFERENCE_LAST_N", 4)
    CONFERENCE_AUDIO_SPEAKERS = _env_int("TELEHEALTH_CONFERENCE_AUDIO_SPEAKERS", 3)
    CONFERENCE_MAX_PARTICIPANTS = _env_int("TELEHEALTH_CONFERENCE_MAX_PARTICIPANTS", 50)
    CONFERENCE_JOIN_LATE_MINUTES = _env_int("TELEHEALTH_CONFERENCE_JOIN_LATE_MINUTES", 60)
    # Slides: the largest image, and how many a session may hold.
    CONFERENCE_SLIDE_MAX_BYTES = _env_int("TELEHEALTH_CONFERENCE_SLIDE_MAX_BYTES",
                                          5 * 1024 * 1024)
    CONFERENCE_MAX_SLIDES = _env_int("TELEHEALTH_CONFERENCE_MAX_SLIDES", 60)
    # A PDF deck (each page becomes a slide; rendered by pdftoppm): its size, its pages, and
    # how long its rendering may take before it is refused.
    CONFERENCE_DECK_MAX_BYTES = _env_int("TELEHEALTH_CONFERENCE_DECK_MAX_BYTES",
                                         15 * 1024 * 1024)
    CONFERENCE_DECK_MAX_PAGES = _env_int("TELEHEALTH_CONFERENCE_DECK_MAX_PAGES", 40)
    CONFERENCE_DECK_TIMEOUT_SECONDS = _env_int("TELEHEALTH_CONFERENCE_DECK_TIMEOUT", 30)
    # A deck still being prepared this long after its upload lost its job (a broker away at
    # the upload, a restarted worker): the periodic run (this often; 0: never) prepares it.
    CONFERENCE_DECK_RETRY_SECONDS = _env_int("TELEHEALTH_CONFERENCE_DECK_RETRY", 600)
    # Jobs (telehealth/jobs): Celery on this broker when set (else TELEHEALTH_REDIS_URL's);
    # without one, the app process runs them on a thread of its own.
    JOBS_BROKER_URL = (os.environ.get("TELEHEALTH_BROKER_URL")
                       or os.environ.get("TELEHEALTH_REDIS_URL") or None)
    JOBS_QUEUE = os.environ.get("TELEHEALTH_JOBS_QUEUE", "telehealth")
    JOBS_EAGER: bool | None = None  # None: eager under TESTING only
    # The outbox: seconds between polls for due messages, a worker's hold on one message,
    # retry back-off (base * 2^(n-1), capped) and the attempts before it is marked failed.
    OUTBOX_POLL_SECONDS = _env_int("TELEHEALTH_OUTBOX_POLL_SECONDS", 30)
    OUTBOX_LEASE_SECONDS = _env_int("TELEHEALTH_OUTBOX_LEASE_SECONDS", 300)
    OUTBOX_RETRY_BASE_SECONDS = _env_int("TELEHEALTH_OUTBOX_RETRY_BASE_SECONDS", 30)
    OUTBOX_RETRY_MAX_SECONDS = _env_int("TELEHEALTH_OUTBOX_RETRY_MAX_SECONDS", 3600)
    OUTBOX_MAX_ATTEMPTS = _env_int("TELEHEALTH_OUTBOX_MAX_ATTEMPTS", 8)
    # Epidemiological weeks for surveillance: "iso" (Monday, ISO 8601) or "mmwr" (Sunday, CDC).
    SURVEILLANCE_EPI_WEEKS = os.environ.get("TELEHEALTH_SURVEILLANCE_EPI_WEEKS", "iso")
    # How often the detectors look at every series again (a job; 0 leaves it to cron).
    SURVEILLANCE_DETECT_SECONDS = float(
        os.environ.get("TELEHEALTH_SURVEILLANCE_DETECT_SECONDS", "3600"))
    # How often conference reminders are looked for (a job; each session is reminded once,
    # a day ahead; 0 leaves it to cron: `flask jobs run conference_reminders`).
    CONFERENCE_REMINDER_SECONDS = _env_int("TELEHEALTH_CONFERENCE_REMINDER_SECONDS", 900)
