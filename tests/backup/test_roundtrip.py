"""Backup and restore: every row and every attachment comes back, checksums intact."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import func, select, text

from telehealth import clock
from telehealth.audit.chain import verify_chain
from telehealth.audit.models import AuditEvent
from telehealth.backup.services import BackupError, read_backup, write_backup
from telehealth.clinics.services import create_clinic
from telehealth.consults.models import Attachment
from telehealth.extensions import db
from tests.conftest import PASSWORD, _empty_tables


def _row_counts() -> dict[str, int]:
    return {t.name: db.session.scalar(select(func.count()).select_from(t))
            for t in db.metadata.sorted_tables}


def _file_checksums(upload_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in upload_dir.iterdir() if p.is_file()}


def _wipe(upload_dir: Path) -> None:
    _empty_tables()
    for path in upload_dir.iterdir():
        path.unlink()


def test_backup_then_restore_into_an_empty_database(app, build_case, tmp_path):
    build_case("answered")
    upload_dir = Path(app.config["UPLOAD_DIR"])
    counts = _row_counts()
    attachments = {a.stored_name: a.sha256 for a in db.session.scalars(select(Attachment))}
    assert len(attachments) == 2 and counts["audit_events"] > 10
    archive = tmp_path / "telehealth.tar.gz"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["backup", str(archive)])
    assert result.exit_code == 0, result.output
    assert "2 files" in result.output

    _wipe(upload_dir)
    assert sum(_row_counts().values()) == 0 and not _file_checksums(upload_dir)
    result = runner.invoke(args=["restore", str(archive)])
    assert result.exit_code == 0, result.output

    restored = _row_counts()
    restored["audit_events"] -= 1  # the restore records itself
    assert restored == counts
    assert {k: v for k, v in _file_checksums(upload_dir).items() if k in attachments} == \
        attachments
    assert verify_chain(db.session()).intact  # the chain continues after the restored head
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.restored"))
    # New rows get fresh ids after the restored ones (sequences were moved on PostgreSQL).
    clinic = create_clinic(name="After restore", country="UG", languages=["en"])
    db.session.commit()
    assert clinic.id > 2


def test_restore_refuses_a_database_that_is_not_empty(app, build_case, tmp_path):
    build_case("draft")
    archive = tmp_path / "b.tar.gz"
    write_backup(db.engine, Path(app.config["UPLOAD_DIR"]), archive)
    with pytest.raises(BackupError, match="not empty"):
        read_backup(db.session(), Path(app.config["UPLOAD_DIR"]), archive)


def test_a_damaged_file_in_the_archive_restores_nothing(app, build_case, tmp_path):
    build_case("draft")
    upload_dir = Path(app.config["UPLOAD_DIR"])
    good = tmp_path / "good.tar.gz"
    write_backup(db.engine, upload_dir, good)
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(good) as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.startswith("files/"):
                data = data[:-10] + b"0123456789"
            dst.addfile(member, io.BytesIO(data))
    _wipe(upload_dir)
    with pytest.raises(BackupError, match="damaged"):
        read_backup(db.session(), upload_dir, bad)
    assert sum(_row_counts().values()) == 0 and not _file_checksums(upload_dir)


def test_backup_refuses_when_an_attachment_file_is_missing(app, build_case, tmp_path):
    objects = build_case("draft")
    upload_dir = Path(app.config["UPLOAD_DIR"])
    (upload_dir / objects["attachment"].stored_name).unlink()
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "x.tar.gz")])
    assert result.exit_code == 1 and "missing or damaged" in result.output
    assert not (tmp_path / "x.tar.gz").exists()
    db.session.execute(text("SELECT 1"))


def test_a_backup_keeps_totp_secrets_encrypted_and_restores_them(app, client, world, tmp_path):
    clock.freeze(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    user = world["coordinator"]
    secret = pyotp.random_base32()
    user.totp_secret = secret
    db.session.commit()
    user_id, email = user.id, user.email
    stored = db.session.execute(text("SELECT totp_secret FROM users WHERE id = :id"),
                                {"id": user_id}).scalar_one()
    archive = tmp_path / "secrets.tar.gz"
    upload_dir = Path(app.config["UPLOAD_DIR"])
    upload_dir.mkdir(parents=True, exist_ok=True)
    write_backup(db.engine, upload_dir, archive)
    with tarfile.open(archive) as tar:
        users = tar.extractfile("tables/users.jsonl").read().decode()
    assert secret not in users and stored in users

    _wipe(upload_dir)
    read_backup(db.session(), upload_dir, archive)
    db.session.commit()
    # Restored as it was (not encrypted a second time), and the same key opens it.
    assert db.session.execute(text("SELECT totp_secret FROM users WHERE id = :id"),
                              {"id": user_id}).scalar_one() == stored
    client.post("/login", data={"email": email, "password": PASSWORD})
    code = pyotp.TOTP(secret).at(clock.now())
    assert client.post("/login/code", data={"code": code}).status_code == 302
