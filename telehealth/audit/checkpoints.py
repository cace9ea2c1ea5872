"""Signed checkpoints of the audit chain, kept outside the database.

A hash chain shows that nothing was changed inside it, but not where it ended: whoever can
write the database can delete the newest entries and point the chain head at the entry
before them. So after commits that add entries (at most one checkpoint every
AUDIT_CHECKPOINT_INTERVAL seconds per process) the newest link - sequence number, hash,
time - is signed (HMAC-SHA256) with a key that is neither in the database nor derived from
anything in it, and appended as one JSON line to a file outside the database (Certificate
Transparency's signed tree heads, RFC 6962, in miniature). Each line also names the one
before it (`n`, `prev`), so removing or editing lines of the file shows too. A copy of each
line can go to syslog, ideally a log host the application's operators cannot rewrite.

`flask audit verify` (chain.verify_chain) compares the chain with every readable checkpoint.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

from telehealth import clock

logger = logging.getLogger(__name__)

FORMAT = 1
# Syslog lines carry this tag; `audit verify --checkpoints FILE` finds checkpoints by it.
TAG = "telehealth-audit-checkpoint"
_HEAD = "audit_checkpoint_head"  # session.info: the chain head a commit is about to make
_EXTENSION = "audit_checkpoints"
_FIELDS = {"v": int, "kind": str, "n": int, "seq": int, "hash": str, "at": str, "prev": str,
           "kid": str, "mac": str}


class CheckpointError(Exception):
    """A checkpoint cannot be written, read or trusted; the message says why."""


@dataclass(frozen=True)
class Settings:
    """Where checkpoints go and what signs them (from the app config)."""

    path: Path
    key: str | None
    key_file: Path
    interval: float
    syslog: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Read the AUDIT_CHECKPOINT_* settings."""
        return cls(path=Path(config["AUDIT_CHECKPOINT_FILE"]),
                   key=config.get("AUDIT_CHECKPOINT_KEY") or None,
                   key_file=Path(config["AUDIT_CHECKPOINT_KEY_FILE"]),
                   interval=float(config.get("AUDIT_CHECKPOINT_INTERVAL", 2)),
                   syslog=str(config.get("AUDIT_CHECKPOINT_SYSLOG") or ""))


def _derive(secret: str) -> bytes:
    return hashlib.sha256(b"telehealth-audit-checkpoint\x00" + secret.encode()).digest()


def load_key(settings: Settings, *, create: bool = False) -> bytes | None:
    """The signing key: TELEHEALTH_AUDIT_CHECKPOINT_KEY, else the key file (made if asked)."""
    if settings.key:
        return _derive(settings.key)
    try:
        return _derive(settings.key_file.read_text().strip())
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise CheckpointError(f"cannot read the checkpoint key {settings.key_file}: {exc}") \
            from exc
    settings.key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(settings.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return _derive(settings.key_file.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return _derive(settings.key_file.read_text().strip())


def key_id(key: bytes) -> str:
    """A short public name for a key, so a checkpoint signed by another one is told apart."""
    return hashlib.sha256(b"telehealth-audit-checkpoint-id\x00" + key).hexdigest()[:16]


def _canonical(fields: Mapping[str, Any]) -> bytes:
    unsigned = {k: v for k, v in fields.items() if k != "mac"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def sign(fields: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """The fields with this key's id and their HMAC-SHA256 added."""
    signed = dict(fields, kid=key_id(key))
    signed["mac"] = hmac.new(key, _canonical(signed), hashlib.sha256).hexdigest()
    return signed


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement: entry `seq` of the chain had hash `hash` at time `at`."""

    n: int
    seq: int
    hash: str
    at: str
    prev: str
    mac: str
    kind: str = "checkpoint"

    @property
    def label(self) -> str:
        return f"checkpoint {self.n} of {self.at}"


def parse(fields: Any, key: bytes) -> Checkpoint:
    """Check one decoded line; raise CheckpointError saying what is wrong with it."""
    if not isinstance(fields, dict) or any(
            not isinstance(fields.get(name), kind) or isinstance(fields.get(name), bool)
            for name, kind in _FIELDS.items()):
        raise CheckpointError("is not a checkpoint (fields missing or of the wrong type)")
    if fields["kid"] != key_id(key):
        raise CheckpointError(f"was signed with another key (key id {fields['kid']}, this "
                              f"server's is {key_id(key)}): refused")
    expected = hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["mac"]):
        raise CheckpointError("was edited: its signature does not match")
    if fields["v"] != FORMAT:
        raise CheckpointError(f"has an unknown format {fields['v']}")
    return Checkpoint(n=fields["n"], seq=fields["seq"], hash=fields["hash"], at=fields["at"],
                      prev=fields["prev"], mac=fields["mac"], kind=fields["kind"])


def _line_fields(line: str) -> str | None:
    """The JSON of a checkpoint line, in the file itself or in a syslog copy."""
    line = line.strip(" \t\r\n\x00")
    if line.startswith("{"):
        return line
    marker = TAG + ": "
    if marker in line:
        return line.split(marker, 1)[1].strip(" \t\r\n\x00")
    return None


# ------------------------------------------------------------------------- writing


def _last_checkpoint(fh: IO[bytes], key: bytes) -> tuple[Checkpoint | None, bool]:
    """The newest valid checkpoint near the end of the file; and whether it ends mid-line."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - 65536))
    tail = fh.read()
    for raw in reversed(tail.splitlines()):
        text = _line_fields(raw.decode("utf-8", "replace"))
        if text is None:
            continue
        try:
            return parse(json.loads(text), key), not tail.endswith(b"\n") and bool(tail)
        except (ValueError, CheckpointError):
            continue
    return None, not tail.endswith(b"\n") and bool(tail)


def append(settings: Settings, seq: int, chain_hash: str, *, force: bool = False
           ) -> dict[str, Any] | None:
    """Append a checkpoint of entry `seq` unless the file already covers it (or `force`).

    An exclusive lock on the file keeps processes that share it from numbering two lines
    alike; only a later link than the file's newest is written, so the file's sequence
    numbers only grow.
    """
    key = load_key(settings, create=True)
    assert key is not None
    settings.path.parent.mkdir(parents=True, exist_ok=True)
    with open(settings.path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        last, cut = _last_checkpoint(fh, key)
        if last is not None and seq <= last.seq and not force:
            return None
        signed = sign({"v": FORMAT, "kind": "checkpoint", "n": last.n + 1 if last else 1,
                       "seq": seq, "hash": chain_hash, "at": clock.now().isoformat(),
                       "prev": last.mac if last else ""}, key)
        line = json.dumps(signed, sort_keys=True, separators=(",", ":"))
        # After a cut line, start a fresh one: the cut line stays for verify to report.
        fh.write((b"\n" if cut else b"") + line.encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    _send_copy(settings, line)
    return signed


_syslog_handlers: dict[str, logging.handlers.SysLogHandler] = {}
_syslog_lock = threading.Lock()


def _syslog_handler(address: str) -> logging.handlers.SysLogHandler:
    """/dev/log (a path), udp://host:port or tcp://host:port."""
    with _syslog_lock:
        if address not in _syslog_handlers:
            if "://" in address:
                scheme, _, rest = address.partition("://")
                host, _, port = rest.rpartition(":")
                kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
                handler = logging.handlers.SysLogHandler(
                    address=(host, int(port or 514)), socktype=kind,
                    facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
            else:
                handler = logging.handlers.SysLogHandler(
                    address=address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
            handler.append_nul = False
            handler.setFormatter(logging.Formatter(f"{TAG}: %(message)s"))
            _syslog_handlers[address] = handler
        return _syslog_handlers[address]


def _send_copy(settings: Settings, line: str) -> None:
    if not settings.syslog:
        return
    try:
        handler = _syslog_handler(settings.syslog)
        handler.emit(logging.LogRecord(TAG, logging.INFO, __file__, 0, line, None, None))
    except (OSError, ValueError):
        logger.exception("audit checkpoint copy to syslog %s not sent", settings.syslog)


class Writer:
    """Batches checkpoints: at most one per interval; a timer writes the last one waiting."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pending: tuple[int, str] | None = None
        self._last_write = float("-inf")
        self._timer: threading.Timer | None = None
        atexit.register(self.flush)

    def schedule(self, seq: int, chain_hash: str) -> None:
        """Checkpoint this head now, or within the interval if one was written just now."""
        with self._lock:
            if self._pending is None or seq > self._pending[0]:
                self._pending = (seq, chain_hash)
            wait = self._last_write + self.settings.interval - time.monotonic()
            if wait <= 0:
                self._write_pending()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the checkpoint still waiting, if any."""
        with self._lock:
            self._timer = None
            self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._last_write = time.monotonic()
        try:
            append(self.settings, *pending)
        except Exception:  # noqa: BLE001 - the commit is done; say so, loudly, and go on
            logger.exception("audit checkpoint of entry #%s not written to %s", pending[0],
                             self.settings.path)


_writers_lock = threading.Lock()


def writer_for(app: Flask) -> Writer:
    """This app's writer (a new one when the checkpoint settings changed)."""
    settings = Settings.from_config(app.config)
    with _writers_lock:
        writer: Writer | None = app.extensions.get(_EXTENSION)
        if writer is None or writer.settings != settings:
            if writer is not None:
                writer.flush()
            writer = app.extensions[_EXTENSION] = Writer(settings)
        return writer


def remember_head(session: Session, seq: int, chain_hash: str) -> None:
    """Note the head this transaction's entries make; it is checkpointed after commit."""
    session.info[_HEAD] = (seq, chain_hash)


def forget_head(session: Session) -> None:
    """The transaction rolled back: nothing to checkpoint."""
    session.info.pop(_HEAD, None)


def schedule_after_commit(session: Session) -> None:
    """After a commit that added audit entries: checkpoint the new head (batched)."""
    head = session.info.pop(_HEAD, None)
    if head is None or not has_app_context():
        return
    try:
        writer_for(current_app._get_current_object()).schedule(*head)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - never undo or break a commit that already happened
        logger.exception("audit checkpoint of entry #%s not scheduled", head[0])


def newest_in_file(settings: Settings) -> Checkpoint | None:
    """The newest valid checkpoint at the end of the checkpoint file, if any."""
    key = load_key(settings)
    if key is None:
        return None
    try:
        with open(settings.path, "rb") as fh:
            return _last_checkpoint(fh, key)[0]
    except FileNotFoundError:
        return None


def statement_for_backup(settings: Settings, seq: int, chain_hash: str) -> dict[str, Any]:
    """A signed checkpoint of a backup's chain head, for the archive; also kept in the file."""
    key = load_key(settings, create=True)
    assert key is not None
    if seq:
        append(settings, seq, chain_hash)
    return sign({"v": FORMAT, "kind": "backup", "n": 0, "seq": seq, "hash": chain_hash,
                 "at": clock.now().isoformat(), "prev": ""}, key)


# ------------------------------------------------------------------------- reading


@dataclass
class SourceReport:
    """What one checkpoint file holds and what is wrong with it."""

    path: Path
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def last(self) -> Checkpoint | None:
        return max(self.checkpoints, key=lambda c: c.n, default=None)


def _numbers(first: int, last: int) -> str:
    return f"{first}" if first == last else f"{first}..{last}"


def read_source(path: Path, key: bytes, *, primary: bool = True) -> SourceReport:
    """Read and check a checkpoint file (primary) or a copy of its lines (syslog, mail)."""
    report = SourceReport(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.problems.append(f"the checkpoint file {path} does not exist")
        return report
    except OSError as exc:
        report.problems.append(f"the checkpoint file {path} cannot be read: {exc}")
        return report
    lines = data.split(b"\n")
    ends_cut = bool(lines[-1].strip())
    seen: set[str] = set()
    previous: Checkpoint | None = None
    for number, raw in enumerate(lines, start=1):
        where = f"{path} line {number}"
        try:
            text = _line_fields(raw.decode("utf-8"))
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
        if text is None:
            if primary and raw.strip():
                report.problems.append(f"{where} is not a checkpoint: the file was edited")
            continue
        try:
            checkpoint = parse(json.loads(text), key)
        except (ValueError, CheckpointError) as exc:
            if number == len(lines) and ends_cut:
                report.problems.append(f"{path} ends in the middle of a checkpoint (line "
                                       f"{number}): the file was truncated")
            else:
                reason = exc if isinstance(exc, CheckpointError) else \
                    "is unreadable (not a whole checkpoint): the file was edited or cut"
                report.problems.append(f"{where} {reason}")
            continue
        if checkpoint.mac in seen:  # a copy may repeat a line (syslog retries)
            continue
        seen.add(checkpoint.mac)
        _check_order(report, number, previous, checkpoint, primary)
        report.checkpoints.append(checkpoint)
        previous = checkpoint
    return report


def _check_order(report: SourceReport, number: int, previous: Checkpoint | None,
                 checkpoint: Checkpoint, primary: bool) -> None:
    where = f"{report.path} line {number}"
    # A copy sent over UDP may lose a line: a gap there is worth a warning, not an alarm.
    gaps = report.problems if primary else report.warnings
    if previous is None:
        if checkpoint.n != 1:
            gaps.append(f"checkpoints {_numbers(1, checkpoint.n - 1)} are missing from the "
                        f"start of {report.path}")
        return
    if checkpoint.n <= previous.n:
        report.problems.append(f"{where}: checkpoint {checkpoint.n} comes after checkpoint "
                               f"{previous.n}: lines were moved or repeated")
    elif checkpoint.n != previous.n + 1:
        gaps.append(f"checkpoints {_numbers(previous.n + 1, checkpoint.n - 1)} are missing "
                    f"from {report.path} (before line {number})")
    elif checkpoint.prev != previous.mac:
        report.problems.append(f"{where}: checkpoint {checkpoint.n} does not follow "
                               f"checkpoint {previous.n}")


def merge_sources(reports: Iterable[SourceReport]) -> tuple[list[Checkpoint], list[str]]:
    """Every valid checkpoint of every source; and where the sources disagree or one is cut."""
    by_n: dict[int, tuple[Checkpoint, Path]] = {}
    problems: list[str] = []
    reports = list(reports)
    for report in reports:
        for checkpoint in report.checkpoints:
            known = by_n.setdefault(checkpoint.n, (checkpoint, report.path))
            if known[0] != checkpoint:
                problems.append(f"checkpoint {checkpoint.n} differs between {known[1]} and "
                                f"{report.path}")
    newest = max(by_n, default=0)
    for report in reports:
        last = report.last
        if last is not None and last.n < newest:
            problems.append(f"{report.path} ends at checkpoint {last.n} but another copy has "
                            f"checkpoints up to {newest}: {report.path} was cut")
    return sorted((c for c, _ in by_n.values()), key=lambda c: (c.seq, c.n)), problems


def check_backup_statement(data: bytes, settings: Settings) -> Checkpoint:
    """The archive's checkpoint, if this server's key signed it; else CheckpointError."""
    key = load_key(settings)
    if key is None:
        raise CheckpointError(
            "cannot be checked: there is no audit checkpoint key here (set "
            "TELEHEALTH_AUDIT_CHECKPOINT_KEY or copy the backed-up server's "
            f"{settings.key_file.name} to {settings.key_file})")
    try:
        checkpoint = parse(json.loads(data), key)
    except ValueError as exc:
        raise CheckpointError("is unreadable") from exc
    if checkpoint.kind != "backup":
        raise CheckpointError("is not a backup checkpoint")
    return checkpoint
