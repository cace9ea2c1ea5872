"""Moved to telehealth/crypto.py (a leaf: models encrypt columns with it); this old path
stays importable for the Alembic migration that encrypted the TOTP secrets."""

from telehealth.crypto import *  # noqa: F403
