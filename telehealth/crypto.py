"""Secrets kept encrypted at rest (the TOTP seeds): one key ring, sealing and opening.

The key is TELEHEALTH_DATA_KEY (a Fernet key: 32 bytes, urlsafe base64) or, when unset, one
derived from SECRET_KEY with HKDF. Keys listed in TELEHEALTH_DATA_OLD_KEYS (earlier data keys
or earlier SECRET_KEYs) still open what they sealed, until `flask security rotate-secrets`
has re-sealed everything under the current key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

logger = logging.getLogger(__name__)

# Changing this changes every derived key: it names what the derived key is for.
HKDF_INFO = b"telehealth data key v1"


class KeyConfigError(ValueError):
    """A data key in the configuration is not a usable key."""


class SecretUnreadable(Exception):
    """No configured key opens this secret (the key changed, or the value was tampered with)."""


class Sealed:
    """A secret as stored: the ciphertext only, opened (`open_secret`) where it is used.

    Loading a row never decrypts, so a wrong key breaks only the step that needs the secret,
    and the plain value does not linger on every loaded user.
    """

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __repr__(self) -> str:
        return "<Sealed secret>"


def derive_key(secret_key: str) -> bytes:
    """The Fernet key HKDF derives from a SECRET_KEY."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


def _fernet_key(value: str) -> bytes | None:
    """The value as a Fernet key, or None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (binascii.Error, ValueError):
        return None
    return value.encode() if len(raw) == 32 else None


@lru_cache(maxsize=8)
def _ring(data_key: str | None, old_keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if data_key:
        current = _fernet_key(data_key)
        if current is None:
            raise KeyConfigError(
                "TELEHEALTH_DATA_KEY is not a Fernet key (32 bytes, urlsafe base64); make one "
                "with `flask --app wsgi security new-data-key` (run with the variable unset)")
    else:
        current = derive_key(secret_key)
    keys = [current]
    for old in old_keys:
        # An old entry may be a data key or a SECRET_KEY the current key was derived from;
        # trying both costs one more HMAC check for a token no key opens.
        if (as_key := _fernet_key(old)) is not None:
            keys.append(as_key)
        keys.append(derive_key(old))
    return MultiFernet([Fernet(k) for k in dict.fromkeys(keys)])


def ring_for(config: Mapping[str, Any]) -> MultiFernet:
    """The keys these settings name: the first seals, every one opens (KeyConfigError)."""
    return _ring(config.get("DATA_KEY"), tuple(config.get("DATA_OLD_KEYS") or ()),
                 str(config["SECRET_KEY"]))


def key_ring() -> MultiFernet:
    """The current app's key ring."""
    return ring_for(current_app.config)


def seal(secret: str) -> Sealed:
    """Encrypt (and authenticate) a secret under the current key."""
    return Sealed(key_ring().encrypt(secret.encode()).decode())


def open_secret(sealed: Sealed) -> str:
    """The plain secret; SecretUnreadable when no configured key opens it."""
    try:
        return key_ring().decrypt(sealed.token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("no configured data key opens this secret") from exc


def reseal(sealed: Sealed) -> Sealed:
    """The same secret sealed under the current key (SecretUnreadable if no key opens it)."""
    try:
        return Sealed(key_ring().rotate(sealed.token.encode()).decode())
    except InvalidToken as exc:
        raise SecretUnreadable("no configured data key opens this secret") from exc


def new_data_key() -> str:
    """A fresh key for TELEHEALTH_DATA_KEY."""
    return Fernet.generate_key().decode()


def hash_token(token: str) -> str:
    """What is stored of a one-time link's token (invitations, guest links): its SHA-256.

    The token itself is long and random, so a plain hash is enough; a database read alone
    never yields a working link.
    """
    return hashlib.sha256(token.encode()).hexdigest()
