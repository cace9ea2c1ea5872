"""The hash chain over audit entries: each entry's hash covers its content and the hash before.

Entries are chained when their transaction commits, under one lock (a PostgreSQL advisory
lock; SQLite serialises writers anyway), so concurrent requests append one after another and
the lock is held only for the last moment of a transaction. The hash is an HMAC keyed from the
deployment's secret: somebody who can write to the database but not read the key cannot
rebuild a valid chain after changing an entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from functools import partial

from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from telehealth import clock, transaction
from telehealth.audit.models import AuditChainHead, AuditEvent

HEAD_ID = 1
# Any constant bigint: the one advisory lock that serialises appends to the chain.
ADVISORY_LOCK_KEY = 0x7E1E_A0D1
_PENDING = "audit_pending"


def _key() -> bytes:
    secret = current_app.config.get("AUDIT_CHAIN_KEY") or current_app.config["SECRET_KEY"]
    return hashlib.sha256(b"telehealth-audit-chain\x00" + str(secret).encode()).digest()


def entry_hash(entry: AuditEvent, prev_hash: str, key: bytes) -> str:
    """The HMAC-SHA256 of an entry's content and the hash of the entry before it."""
    content = [
        entry.seq,
        entry.at.isoformat() if entry.at else None,
        entry.actor_id,
        entry.action,
        entry.consult_id,
        entry.object_type,
        entry.object_id,
        entry.detail,
        entry.ip,
        prev_hash,
    ]
    message = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def queue_for_commit(session: Session, entry: AuditEvent) -> None:
    """Hold an entry until its transaction commits, then chain and insert it."""
    transaction.collected(_PENDING, session).append(entry)
    transaction.before_commit(partial(_chain_pending_entries, session), session, key=_PENDING)


def _lock_chain(session: Session) -> AuditChainHead:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    head = session.get(AuditChainHead, HEAD_ID, with_for_update=True, populate_existing=True)
    if head is None:
        head = AuditChainHead(id=HEAD_ID, last_seq=0, last_hash="")
        session.add(head)
    return head


def _chain_pending_entries(session: Session) -> None:
    queued: list[AuditEvent] = transaction.collected(_PENDING, session)
    pending, queued[:] = queued[:], []
    if not pending:
        return
    key = _key()
    head = _lock_chain(session)
    for entry in pending:
        entry.seq = head.last_seq + 1
        entry.prev_hash = head.last_hash
        entry.hash = entry_hash(entry, head.last_hash, key)
        head.last_seq, head.last_hash = entry.seq, entry.hash
        session.add(entry)
    head.updated_at = clock.now()


@dataclass
class ChainReport:
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(session: Session) -> ChainReport:
    """Walk the whole chain; report every changed, missing, inserted or unchained entry."""
    key = _key()
    report = ChainReport()
    expected_seq, prev_hash = 1, ""
    entries = session.scalars(
        select(AuditEvent).order_by(AuditEvent.seq, AuditEvent.id).execution_options(
            yield_per=1000)
    )
    for entry in entries:
        report.entries += 1
        if entry.seq is None or entry.hash is None:
            report.problems.append(f"entry id {entry.id} is not part of the chain")
            continue
        if entry.seq != expected_seq:
            report.problems.append(
                f"entries {expected_seq}..{entry.seq - 1} are missing (before id {entry.id})"
                if entry.seq > expected_seq
                else f"entry #{entry.seq} (id {entry.id}) is out of order"
            )
        if entry.prev_hash != prev_hash:
            report.problems.append(
                f"entry #{entry.seq} (id {entry.id}) does not follow the entry before it"
            )
        if not hmac.compare_digest(entry_hash(entry, entry.prev_hash or "", key), entry.hash):
            report.problems.append(f"entry #{entry.seq} (id {entry.id}) was changed")
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    head = session.get(AuditChainHead, HEAD_ID)
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            report.problems.append("the chain head is missing")
    elif head.last_seq != last_seq or head.last_hash != prev_hash:
        report.problems.append(
            f"the chain ends at #{last_seq} but its head says #{head.last_seq}: "
            "the newest entries were deleted or changed"
        )
    return report
