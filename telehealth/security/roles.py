"""Role checks for views that several features share."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask_babel import gettext as _
from flask_login import current_user, login_required

from telehealth.accounts.models import Role
from telehealth.errors import PermissionDenied


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Only administrators manage users and clinics."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user.role != Role.ADMIN:
            raise PermissionDenied(_("Only administrators can do this."))
        return view(*args, **kwargs)

    return wrapped
