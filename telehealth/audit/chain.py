"""The hash chain over audit entries: each entry's hash covers its content and the hash before.

Entries are chained when their transaction commits, under one lock (a PostgreSQL advisory
lock; SQLite serialises writers anyway), so concurrent requests append one after another and
the lock is held only for the last moment of a transaction. The hash is an HMAC keyed from the
deployment's secret: somebody who can write to the database but not read the key cannot
rebuild a valid chain after changing an entry. Nor can they cut entries off its end unseen:
after commit the new head is checkpointed outside the database (checkpoints.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from flask import current_app
from sqlalchemy import LargeBinary, Result, Row, String, cast, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from telehealth import clock, transaction
from telehealth.audit import checkpoints
from telehealth.audit.checkpoints import Checkpoint
from telehealth.audit.models import AuditChainHead, AuditEvent
from telehealth.boundary import BUSY, lock_wait_ran_out
from telehealth.errors import Unavailable

HEAD_ID = 1
# Any constant bigint: the one advisory lock that serialises appends to the chain.
ADVISORY_LOCK_KEY = 0x7E1E_A0D1
_PENDING = "audit_pending"
_CHECKPOINT = "audit_checkpoint"


def _key() -> bytes:
    secret = current_app.config.get("AUDIT_CHAIN_KEY") or current_app.config["SECRET_KEY"]
    return hashlib.sha256(b"telehealth-audit-chain\x00" + str(secret).encode()).digest()


def entry_hash(entry: AuditEvent | StoredEntry, prev_hash: str, key: bytes) -> str:
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


# One statement (statement counts stay as they were): bound this transaction's lock waits,
# then take the chain's lock. set_config is volatile, so its subquery runs first.
_BOUNDED_LOCK = text("SELECT pg_advisory_xact_lock(:key) "
                     "FROM (SELECT set_config('lock_timeout', :timeout, true)) AS bounded")


def _lock_chain(session: Session) -> AuditChainHead:
    """Lock the chain's head for this transaction, waiting a few seconds at most.

    A writer stopped mid-commit (SIGSTOP, a stalled VM) keeps the lock until its connection
    dies: the others give up after DATABASE_LOCK_TIMEOUT_SECONDS with `Unavailable` (a 503
    "try again") and their transaction rolls back whole. On PostgreSQL the bound holds for
    the rest of the commit (it is SET LOCAL); on SQLite the busy timeout does the same.
    """
    try:
        if session.get_bind().dialect.name == "postgresql":
            timeout_ms = int(current_app.config.get("DATABASE_LOCK_TIMEOUT_SECONDS", 5) * 1000)
            session.execute(_BOUNDED_LOCK, {"key": ADVISORY_LOCK_KEY,
                                            "timeout": f"{max(timeout_ms, 1)}ms"})
        if session.get_bind().dialect.name == "sqlite":
            head = _write_lock_head_sqlite(session)
        else:
            head = session.get(AuditChainHead, HEAD_ID, with_for_update=True,
                               populate_existing=True)
    except OperationalError as exc:
        if not lock_wait_ran_out(exc):
            raise
        raise Unavailable(str(BUSY)) from exc
    if head is None:
        head = AuditChainHead(id=HEAD_ID, last_seq=0, last_hash="")
        session.add(head)
    return head


def _write_lock_head_sqlite(session: Session) -> AuditChainHead | None:
    """SQLite has no row locks (FOR UPDATE is dropped) and starts its transactions deferred:
    two requests read the same head, then the second numbered its entries like the first and
    failed on the unique `seq` (a 500 for about one page in five with four people on the
    demo). Writing the head takes the database's one write lock first (waiting up to the busy
    timeout), and RETURNING reads it under that lock: one statement, as the SELECT was."""
    return session.scalars(
        update(AuditChainHead).where(AuditChainHead.id == HEAD_ID)
        .values(last_seq=AuditChainHead.last_seq).returning(AuditChainHead)
        .execution_options(populate_existing=True, synchronize_session=False)).one_or_none()


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
    checkpoints.remember_head(session, head.last_seq, head.last_hash)
    # Signed outside the database once the entries are durable (batched by the writer).
    transaction.after_commit(partial(checkpoints.schedule_after_commit, session), session,
                             key=_CHECKPOINT)
    transaction.after_rollback(partial(checkpoints.forget_head, session), session,
                               key=_CHECKPOINT)


# ------------------------------------------------------------------------- verifying


@dataclass
class StoredEntry:
    """An entry as stored, read without the ORM so that a damaged value cannot stop the walk."""

    id: Any
    seq: int | None
    at: datetime | None
    actor_id: Any
    action: str
    consult_id: Any
    object_type: str
    object_id: Any
    detail: str
    ip: str
    prev_hash: str | None
    hash: str | None

    @property
    def name(self) -> str:
        return f"entry #{self.seq} (id {self.id})" if self.seq is not None else \
            f"entry id {self.id}"


_INTEGERS = ("id", "seq", "actor_id", "consult_id", "object_id")
_TEXTS = ("action", "object_type", "detail", "ip", "prev_hash", "hash")


def _stored_columns(session: Session) -> list[Any]:
    table = AuditEvent.__table__
    # SQLite keeps whatever it is given: read text as bytes and decode it here, where a bad
    # value becomes a finding instead of an exception in the driver.
    raw: TypeEngine[Any] = \
        LargeBinary() if session.get_bind().dialect.name == "sqlite" else String()
    return [*(table.c[name] for name in _INTEGERS), cast(table.c.at, raw).label("at"),
            *(cast(table.c[name], raw).label(name) for name in _TEXTS)]


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _stored_entry(row: Row[Any]) -> tuple[StoredEntry, list[str]]:
    """The entry and what in it cannot be read."""
    values, unreadable = dict(row._mapping), []
    for name in _INTEGERS:
        if values[name] is not None and (not isinstance(values[name], int)
                                         or isinstance(values[name], bool)):
            unreadable.append(f"its {name} {_show(values[name])} is not a number")
            values[name] = None
    for name in (*_TEXTS, "at"):
        if isinstance(values[name], bytes | memoryview):
            try:
                values[name] = bytes(values[name]).decode("utf-8")
            except UnicodeDecodeError:
                unreadable.append(f"its {'time' if name == 'at' else name} is not text")
                values[name] = None
    at_text, values["at"] = values["at"], None
    try:
        values["at"] = datetime.fromisoformat(at_text).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        if at_text is not None or not unreadable:
            unreadable.append(f"its time {_show(at_text)} is not a time")
    detail = values["detail"]
    if detail:
        try:
            if not isinstance(json.loads(detail), dict):
                raise ValueError(detail)
        except ValueError:
            unreadable.append(f"its detail {_show(detail)} is not a JSON object")
    return StoredEntry(**values), unreadable


@dataclass
class ChainReport:
    entries: int = 0
    last_seq: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Problems that keep the trail from being checked at all (no key, no database).
    errors: list[str] = field(default_factory=list)
    newest_checkpoint: Checkpoint | None = None

    @property
    def intact(self) -> bool:
        return not self.problems and not self.errors


def seq_range(first: int, last: int) -> str:
    """'entry #7' or 'entries #3..#9 (7 entries)'."""
    if first == last:
        return f"entry #{first}"
    return f"entries #{first}..#{last} ({last - first + 1} entries)"


def _closing(rows: Result[Any]) -> Iterator[Row[Any]]:
    with rows:  # closed even if the walk stops early: SQLite would keep its read lock
        yield from rows


def verify_chain(session: Session, anchors: Sequence[Checkpoint] = (),
                 uncovered_after: timedelta | None = None) -> ChainReport:
    """Walk the whole chain; report every changed, missing, inserted or unreadable entry.

    `anchors` are trusted checkpoints (sorted by seq): each must name an entry with its
    hash, and the chain must reach the newest. Entries past the newest checkpoint that are
    older than `uncovered_after` are worth a warning: a checkpoint should have followed.
    """
    key = _key()
    report = ChainReport()
    expected_seq, prev_hash = 1, ""
    next_anchor = 0
    newest_anchored = anchors[-1].seq if anchors else 0
    first_uncovered: StoredEntry | None = None
    rows = session.execute(select(*_stored_columns(session)).order_by(
        AuditEvent.__table__.c.seq, AuditEvent.__table__.c.id).execution_options(yield_per=1000))
    for row in _closing(rows):
        report.entries += 1
        entry, unreadable = _stored_entry(row)
        if unreadable:
            report.problems.append(f"{entry.name} is unreadable: " + "; ".join(unreadable))
        if entry.seq is None or entry.hash is None:
            report.problems.append(f"{entry.name} is not part of the chain (it was inserted)")
            continue
        while next_anchor < len(anchors) and anchors[next_anchor].seq <= entry.seq:
            anchor = anchors[next_anchor]
            # An anchor below this entry names a deleted one: the gap is reported below.
            if anchor.seq == entry.seq and not hmac.compare_digest(anchor.hash, entry.hash):
                report.problems.append(f"{entry.name} does not match {anchor.label}: it was "
                                       "changed, or the chain was rewritten up to it")
            next_anchor += 1
        if entry.seq > expected_seq and entry.prev_hash == prev_hash and expected_seq > 1:
            report.problems.append(f"{entry.name} was inserted: it is numbered #{entry.seq} "
                                   f"but follows #{expected_seq - 1}")
        elif entry.seq > expected_seq:
            report.problems.append(f"{seq_range(expected_seq, entry.seq - 1)} "
                                   f"{'was' if entry.seq - 1 == expected_seq else 'were'} "
                                   f"deleted (missing before #{entry.seq})")
        elif entry.seq < expected_seq:
            report.problems.append(f"{entry.name} is out of order")
        elif entry.prev_hash != prev_hash:
            report.problems.append(f"{entry.name} does not follow the entry before it")
        if entry.at is not None and not hmac.compare_digest(
                entry_hash(entry, entry.prev_hash or "", key), entry.hash):
            report.problems.append(f"{entry.name} was changed")
        if anchors and entry.seq > newest_anchored and first_uncovered is None:
            first_uncovered = entry
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    report.last_seq = last_seq = expected_seq - 1
    if anchors:
        report.newest_checkpoint = newest = max(anchors, key=lambda a: (a.seq, a.n))
        if newest.seq > last_seq:
            report.problems.append(
                f"{seq_range(last_seq + 1, newest.seq)} "
                f"{'is' if newest.seq == last_seq + 1 else 'are'} missing from the end of the "
                f"trail: {newest.label} covers #{newest.seq}, the trail ends at #{last_seq}")
    head = session.get(AuditChainHead, HEAD_ID)
    if head is None:
        if last_seq:
            report.problems.append("the chain head is missing")
    elif head.last_seq != last_seq or head.last_hash != prev_hash:
        report.problems.append(
            f"the chain ends at #{last_seq} but its head says #{head.last_seq}: "
            "the newest entries were deleted or changed"
        )
    if first_uncovered is not None and first_uncovered.at is not None and \
            uncovered_after is not None and first_uncovered.at < clock.now() - uncovered_after:
        report.warnings.append(
            f"{seq_range(first_uncovered.seq or 0, last_seq)} "
            f"{'is' if first_uncovered.seq == last_seq else 'are'} not covered by a checkpoint "
            f"though the first was written at {first_uncovered.at.isoformat()}: the end of the "
            "checkpoint file may have been cut, or the server stopped before it wrote one "
            "(the next commit writes one)")
    return report
