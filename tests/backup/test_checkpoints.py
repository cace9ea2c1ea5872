"""A backup carries the audit trail's checkpoint; a restore keeps chain and checkpoints going."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from telehealth.extensions import db
from tests.audit.conftest import cut_end, run_verify
from tests.conftest import _empty_tables


def _backup(app, archive: Path) -> str:
    result = app.test_cli_runner().invoke(args=["backup", str(archive)])
    assert result.exit_code == 0, result.output
    return result.output


def _restore(app, archive: Path) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["restore", str(archive)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _wipe_database() -> None:
    _empty_tables()
    db.session.remove()


@pytest.mark.parametrize("same_checkpoint_file", [True, False],
                         ids=["same-server", "new-server"])
def test_backup_restore_more_activity_verifies_and_a_later_cut_is_found(
        app, make_trail, checkpoint_file, tmp_path, monkeypatch, same_checkpoint_file):
    trail = make_trail(5)
    newest, newest_hash = trail[-1].seq, trail[-1].hash
    archive = tmp_path / "backup.tar.gz"
    assert f"audit checkpoint at entry #{newest}" in _backup(app, archive)
    with tarfile.open(archive) as tar:
        statement = json.loads(tar.extractfile("audit_checkpoint.json").read())
    assert (statement["seq"], statement["hash"]) == (newest, newest_hash)

    _wipe_database()
    if not same_checkpoint_file:  # another server: same key, a checkpoint file of its own
        monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_FILE",
                            str(tmp_path / "elsewhere" / "audit_checkpoints.jsonl"))
    code, output = _restore(app, archive)
    assert code == 0, output
    after = make_trail(4)  # more activity
    assert after[len(trail)].action == "backup.restored"
    assert f'"checkpoint_seq": {newest}' in after[len(trail)].detail
    code, output = run_verify(app)
    assert code == 0, output
    assert f"intact: {len(after)} entries" in output

    first, last = cut_end(3)
    code, output = run_verify(app)
    assert code == 1
    assert f"entries #{first}..#{last} (3 entries) are missing from the end" in output


def _rewrite_archive(src: Path, dst: Path, changes: dict[str, Callable[[bytes], bytes]]
                     ) -> None:
    with tarfile.open(src) as old, tarfile.open(dst, "w:gz") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()
            if member.name in changes:
                data = changes[member.name](data)
                member.size = len(data)
            new.addfile(member, io.BytesIO(data))


def _drop_last_entries(archive: Path, count: int) -> dict[str, Callable[[bytes], bytes]]:
    """An archive whose newest entries were cut, and its chain head pointed before them."""
    with tarfile.open(archive) as tar:
        rows = [json.loads(line) for line in
                tar.extractfile("tables/audit_events.jsonl").read().splitlines()]
    kept = sorted(rows, key=lambda row: row["seq"])[:-count]

    def head(data: bytes) -> bytes:
        row = json.loads(data)
        row["last_seq"], row["last_hash"] = kept[-1]["seq"], kept[-1]["hash"]
        return json.dumps(row).encode() + b"\n"

    def manifest(data: bytes) -> bytes:
        fields = json.loads(data)
        fields["tables"]["audit_events"] = len(kept)
        return json.dumps(fields).encode()

    return {"manifest.json": manifest, "tables/audit_events.jsonl":
            lambda data: b"".join(json.dumps(row).encode() + b"\n" for row in kept),
            "tables/audit_chain_head.jsonl": head}


def test_a_restore_refuses_an_archive_cut_short(app, make_trail, tmp_path):
    last = make_trail(6)[-1].seq
    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    _backup(app, good)
    _rewrite_archive(good, bad, _drop_last_entries(good, 2))
    _wipe_database()
    code, output = _restore(app, bad)
    assert code == 1
    assert f"the archive's audit trail ends at #{last - 2} (its head says #{last - 2}) but " \
           f"the archive's checkpoint covers #{last}" in output
    assert db.session.scalar(db.select(db.func.count()).select_from(
        db.metadata.tables["audit_events"])) == 0


def test_a_restore_refuses_a_checkpoint_signed_with_another_key_or_edited(
        app, make_trail, tmp_path, monkeypatch):
    make_trail(2)
    archive = tmp_path / "b.tar.gz"
    _backup(app, archive)
    _wipe_database()
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", "another server's key")
    code, output = _restore(app, archive)
    assert code == 1 and "audit checkpoint was signed with another key" in output
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", None)

    def later(data: bytes) -> bytes:
        statement = json.loads(data)
        statement["seq"] += 1
        return json.dumps(statement).encode()

    edited = tmp_path / "edited.tar.gz"
    _rewrite_archive(archive, edited, {"audit_checkpoint.json": later})
    code, output = _restore(app, edited)
    assert code == 1 and "audit checkpoint was edited" in output

    Path(app.config["AUDIT_CHECKPOINT_KEY_FILE"]).unlink()
    code, output = _restore(app, archive)
    assert code == 1 and "cannot be checked: there is no audit checkpoint key here" in output


def test_an_archive_without_a_checkpoint_restores_with_a_warning(app, make_trail, tmp_path):
    make_trail(2)
    archive, old = tmp_path / "b.tar.gz", tmp_path / "old.tar.gz"
    _backup(app, archive)
    with tarfile.open(archive) as src, tarfile.open(old, "w:gz") as dst:
        for member in src.getmembers():
            if member.name != "audit_checkpoint.json":
                dst.addfile(member, src.extractfile(member))
    _wipe_database()
    code, output = _restore(app, old)
    assert code == 0 and "WARNING: the archive carries no audit checkpoint" in output


def test_a_backup_of_a_trail_cut_short_says_so(app, make_trail, tmp_path):
    make_trail(4)
    first, last = cut_end(2)
    output = _backup(app, tmp_path / "b.tar.gz")
    assert f"WARNING: the audit trail in this backup ends at #{first - 1} but checkpoint" \
        in output and f"covers #{last}: entries were cut off its end" in output
