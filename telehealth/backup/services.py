"""One archive with every database row and every attachment, and back.

The archive is a gzip'd tar: `manifest.json` (schema revision, row counts, file checksums),
`tables/<table>.jsonl` (one row a line, in dependency order) and `files/<stored name>`.
Restoring needs an empty database at the same schema revision; it checks every file against
the checksum its attachment row recorded. Encrypted columns (TOTP secrets) stay encrypted in
the archive: a restore needs the same data key (TELEHEALTH_DATA_KEY, or the same SECRET_KEY).

`audit_checkpoint.json` is a signed checkpoint of the audit chain's head in the snapshot
(audit/checkpoints.py): a restore refuses an archive whose trail does not reach it, so
entries cut from the archive's end are noticed, and the restored chain goes on from there.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from alembic.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from telehealth import clock
from telehealth.audit.chain import HEAD_ID
from telehealth.audit.checkpoints import Checkpoint, CheckpointError
from telehealth.audit.models import AuditChainHead, AuditEvent
from telehealth.consults.models import Attachment
from telehealth.crypto import Sealed
from telehealth.db_types import EncryptedString, UTCDateTime
from telehealth.extensions import db

FORMAT = 1
CHECKPOINT_MEMBER = "audit_checkpoint.json"
# Signs a checkpoint of the snapshot's chain head (seq, hash) for the archive.
SignHead = Callable[[int, str], dict[str, Any]]
# Checks the archive's checkpoint and returns it (raises CheckpointError).
CheckCheckpoint = Callable[[bytes], Checkpoint]


class BackupError(Exception):
    """The archive cannot be written or restored; the message says why."""


@dataclass
class Summary:
    revision: str | None
    tables: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # stored name -> sha256
    checkpoint: Checkpoint | None = None  # restore: the archive's checked audit checkpoint
    checkpoint_seq: int | None = None  # backup: the chain head the archive's checkpoint names


def _tables() -> list[Table]:
    return list(db.metadata.sorted_tables)


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name  # SQLAlchemy stores (and accepts) non-native enums by name
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Sealed):
        return value.token  # the archive keeps the ciphertext: restore needs the same key
    return value


def _decode(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        column_type = table.c[name].type
        if value is not None and isinstance(column_type, UTCDateTime | DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(column_type, Date):
            value = date.fromisoformat(value)
        elif value is not None and isinstance(column_type, Boolean):
            value = bool(value)
        elif value is not None and isinstance(column_type, EncryptedString):
            value = Sealed(value)  # already encrypted: stored as it is, not sealed again
        out[name] = value
    return out


def current_revision(session: Session) -> str | None:
    """The Alembic revision of the database this session talks to."""
    return MigrationContext.configure(session.connection()).get_current_revision()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(clock.now().timestamp())
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_backup(engine: Engine, upload_dir: Path, archive_path: Path,
                 sign_head: SignHead | None = None) -> Summary:
    """Write every table and every attachment into one archive, from one snapshot.

    With `sign_head`, the archive carries a signed checkpoint of the snapshot's audit chain.
    """
    options = {"isolation_level": "REPEATABLE READ"} \
        if engine.dialect.name == "postgresql" else {}
    tmp_path = archive_path.with_name(archive_path.name + ".part")
    try:
        with engine.connect().execution_options(**options) as conn, conn.begin():
            return _write(conn, upload_dir, archive_path, tmp_path, sign_head)
    except (ValueError, SQLAlchemyError, CheckpointError, OSError) as exc:
        tmp_path.unlink(missing_ok=True)
        raise BackupError(f"the backup failed: {exc}") from exc


def _write(conn: Connection, upload_dir: Path, archive_path: Path, tmp_path: Path,
           sign_head: SignHead | None) -> Summary:
    summary = Summary(revision=MigrationContext.configure(conn).get_current_revision())
    missing: list[str] = []
    with tarfile.open(tmp_path, "w:gz") as archive:
        for table in _tables():
            # Spooled to disk past a few MB: a big table does not have to fit in memory.
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
                count = 0
                # Closed even when a row cannot be read: SQLite would keep its read lock.
                with conn.execution_options(yield_per=1000).execute(select(table)) as rows:
                    for row in rows.mappings():
                        spool.write(json.dumps({k: _encode(v) for k, v in row.items()},
                                               ensure_ascii=False,
                                               separators=(",", ":")).encode())
                        spool.write(b"\n")
                        count += 1
                summary.tables[table.name] = count
                info = tarfile.TarInfo(f"tables/{table.name}.jsonl")
                info.size, info.mode = spool.tell(), 0o600
                info.mtime = int(clock.now().timestamp())
                spool.seek(0)
                archive.addfile(info, spool)
        for stored_name, sha256 in conn.execute(
            select(Attachment.stored_name, Attachment.sha256).order_by(Attachment.id)
        ):
            path = upload_dir / stored_name
            if not path.is_file() or sha256_of(path) != sha256:
                missing.append(stored_name)
                continue
            archive.add(str(path), arcname=f"files/{stored_name}", recursive=False)
            summary.files[stored_name] = sha256
        if sign_head is not None:
            head = conn.execute(select(AuditChainHead.last_seq, AuditChainHead.last_hash)
                                .where(AuditChainHead.id == HEAD_ID)).first()
            summary.checkpoint_seq, head_hash = (head[0], head[1]) if head else (0, "")
            statement = sign_head(summary.checkpoint_seq, head_hash)
            _add_bytes(archive, CHECKPOINT_MEMBER,
                       json.dumps(statement, sort_keys=True, separators=(",", ":")).encode())
        manifest = {"format": FORMAT, "created_at": clock.now().isoformat(),
                    "revision": summary.revision, "tables": summary.tables,
                    "files": summary.files}
        _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=1).encode())
    if missing:
        tmp_path.unlink()
        raise BackupError(f"{len(missing)} attachment files are missing or damaged: "
                          + ", ".join(missing[:10]))
    tmp_path.replace(archive_path)
    return summary


def _reset_sequences(session: Session) -> None:
    for table in _tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            continue
        session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
            f"COALESCE(MAX({pk[0].name}), 1), MAX({pk[0].name}) IS NOT NULL) FROM {table.name}"
        ))


def _archive_checkpoint(archive: tarfile.TarFile, check: CheckCheckpoint | None
                        ) -> Checkpoint | None:
    if check is None or CHECKPOINT_MEMBER not in archive.getnames():
        return None
    try:
        return check(_read(archive, CHECKPOINT_MEMBER))
    except CheckpointError as exc:
        raise BackupError(f"the archive's audit checkpoint {exc}") from exc


def _check_restored_chain(session: Session, checkpoint: Checkpoint) -> None:
    """The restored trail must reach the archive's checkpoint, with the same hash."""
    head = session.execute(select(AuditChainHead.last_seq, AuditChainHead.last_hash)
                           .where(AuditChainHead.id == HEAD_ID)).first()
    head_seq, head_hash = (head[0], head[1]) if head else (0, "")
    last_seq = session.scalar(select(func.max(AuditEvent.seq))) or 0
    hash_there = session.scalar(select(AuditEvent.hash).where(
        AuditEvent.seq == checkpoint.seq)) if checkpoint.seq else ""
    if (head_seq, head_hash, hash_there) != (checkpoint.seq, checkpoint.hash, checkpoint.hash):
        raise BackupError(
            f"the archive's audit trail ends at #{last_seq} (its head says #{head_seq}) but "
            f"the archive's checkpoint covers #{checkpoint.seq}: audit entries were removed "
            "from the archive or changed; nothing was restored")


def read_backup(session: Session, upload_dir: Path, archive_path: Path,
                check_checkpoint: CheckCheckpoint | None = None) -> Summary:
    """Restore an archive into this (empty, migrated) database and the upload folder.

    With `check_checkpoint`, the archive's audit checkpoint must be one this server's key
    signed, and the restored trail must reach it.
    """
    with tarfile.open(archive_path, "r:gz") as archive:
        member_names = set(archive.getnames())
        manifest = json.loads(_read(archive, "manifest.json"))
        if manifest.get("format") != FORMAT:
            raise BackupError("this archive was written by another version of the backup")
        checkpoint = _archive_checkpoint(archive, check_checkpoint)
        revision = current_revision(session)
        if manifest["revision"] != revision:
            raise BackupError(f"the archive has schema {manifest['revision']}, the database "
                              f"{revision}: upgrade both to the same revision first")
        for table in _tables():
            if session.scalar(select(func.count()).select_from(table)):
                raise BackupError(f"the database is not empty (table {table.name} has rows)")
        summary = Summary(revision=revision, checkpoint=checkpoint)
        upload_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        try:
            for stored_name, sha256 in manifest["files"].items():
                if not stored_name.isalnum() or f"files/{stored_name}" not in member_names:
                    raise BackupError(f"the archive lacks the file {stored_name!r}")
                data = _read(archive, f"files/{stored_name}")
                if hashlib.sha256(data).hexdigest() != sha256:
                    raise BackupError(f"the file {stored_name} in the archive is damaged")
                target = upload_dir / stored_name
                if target.exists() and sha256_of(target) != sha256:
                    raise BackupError(f"{target} exists with other content")
                if not target.exists():
                    target.write_bytes(data)
                    written.append(target)
                summary.files[stored_name] = sha256
            for table in _tables():
                summary.tables[table.name] = _restore_table(session, archive, table,
                                                            manifest["tables"])
            if session.get_bind().dialect.name == "postgresql":
                _reset_sequences(session)
            session.flush()
            if checkpoint is not None:
                _check_restored_chain(session, checkpoint)
        except BaseException:
            session.rollback()
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return summary


def _restore_table(session: Session, archive: tarfile.TarFile, table: Table,
                   expected: dict[str, int]) -> int:
    count, batch = 0, []
    try:
        for line in _lines(archive, f"tables/{table.name}.jsonl"):
            batch.append(_decode(table, json.loads(line)))
            if len(batch) == 500:
                session.execute(table.insert(), batch)
                count, batch = count + len(batch), []
        if batch:
            session.execute(table.insert(), batch)
            count += len(batch)
    except (ValueError, TypeError, KeyError, SQLAlchemyError) as exc:
        raise BackupError(f"table {table.name}: row {count + len(batch)} cannot be restored "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if count != expected.get(table.name, 0):
        raise BackupError(f"table {table.name}: the row count does not match")
    return count


def _lines(archive: tarfile.TarFile, name: str) -> Iterator[bytes]:
    handle = _open(archive, name)
    for line in handle:
        if line.strip():
            yield line


def _read(archive: tarfile.TarFile, name: str) -> bytes:
    return _open(archive, name).read()


def _open(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        member = archive.getmember(name)
    except KeyError as exc:
        raise BackupError(f"the archive has no {name}") from exc
    if not member.isfile():
        raise BackupError(f"{name} in the archive is not a file")
    handle = archive.extractfile(member)
    if handle is None:
        raise BackupError(f"{name} cannot be read")
    return handle
