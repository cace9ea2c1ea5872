"""What the consult page shows: the consult's own values plus what other features add.

Notes (the thread and its forms) and matching (whether an offer waits for the reader) are
above consults in the layers; they contribute through `signals.consult_page`, so this
module never imports them. Views of those features re-render the page through here.
"""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from telehealth import signals
from telehealth.accounts.models import Role
from telehealth.consults import services
from telehealth.consults.forms import ActionForm, CloseForm
from telehealth.consults.models import Consult, ConsultStatus


def detail_context(consult: Consult, **extra: Any) -> dict[str, Any]:
    """Template values of the consult page; `extra` (a form with its errors) wins."""
    user = current_user
    context: dict[str, Any] = {
        "consult": consult,
        "close_form": CloseForm(),
        "action_form": ActionForm(),
        "can_write": services.can_write_notes(user, consult),
        "is_requester": services.is_requesting_clinician(user, consult),
        "is_assigned": consult.specialist_id == user.id,
        "is_coordinator": user.role in (Role.COORDINATOR, Role.ADMIN),
        "status_label": services.status_label,
        "Status": ConsultStatus,
    }
    for values in signals.values_from(signals.consult_page, consult, user=user):
        context.update(values)
    context.update(extra)
    return context
