"""Who manages the roster: coordinators and admins, everyone else is refused."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from telehealth.accounts.models import Role
from telehealth.errors import PermissionDenied


def is_roster_manager(user: Any) -> bool:
    return bool(user.is_authenticated and user.role in (Role.COORDINATOR, Role.ADMIN))


def require_roster_manager(user: Any) -> None:
    """Coordinators and admins manage the roster; everyone else is refused."""
    if not is_roster_manager(user):
        raise PermissionDenied(_("Only coordinators manage the roster."))
