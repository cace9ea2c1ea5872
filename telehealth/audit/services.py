"""Recording the audit trail."""

from __future__ import annotations

import json
from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from telehealth import clock
from telehealth.audit.chain import queue_for_commit
from telehealth.audit.models import AuditEvent
from telehealth.extensions import db


def record(
    action: str,
    *,
    consult_id: int | None = None,
    obj: Any = None,
    actor_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit entry to the current transaction (it commits with the change it records).

    The entry is written, chained to the one before, when the transaction commits; a
    rollback drops it together with the change it was about.
    """
    ip = ""
    if has_request_context():
        ip = request.remote_addr or ""
        if actor_id is None and current_user.is_authenticated:
            actor_id = current_user.id
    event = AuditEvent(
        at=clock.now(),
        actor_id=actor_id,
        action=action,
        consult_id=consult_id,
        object_type=type(obj).__name__.lower() if obj is not None else "",
        object_id=getattr(obj, "id", None),
        detail=json.dumps(detail, sort_keys=True, default=str) if detail else "",
        ip=ip,
    )
    queue_for_commit(db.session(), event)
    return event
