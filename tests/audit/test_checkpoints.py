"""Signed checkpoints outside the database show where the trail ended (issue 16)."""

from __future__ import annotations

import json
import socket
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from telehealth import clock
from telehealth.audit.chain import verify_chain
from telehealth.audit.checkpoints import Settings, key_id, load_key, sign
from telehealth.audit.models import AuditEvent
from telehealth.audit.services import record
from telehealth.extensions import db
from tests.audit.conftest import cut_end, is_postgres, run_verify, tamper


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _head() -> AuditEvent:
    return db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()


def test_every_commit_with_entries_is_checkpointed_and_verifies(app, make_trail,
                                                                checkpoint_file):
    trail = make_trail(10)
    lines = _lines(checkpoint_file)
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["seq"] == trail[-1].seq and lines[-1]["hash"] == trail[-1].hash
    assert all(b["prev"] == a["mac"] for a, b in zip(lines, lines[1:], strict=False))
    assert stat.S_IMODE(checkpoint_file.with_name("key").stat().st_mode) == 0o600
    code, output = run_verify(app)
    assert code == 0, output
    assert f"intact: {len(trail)} entries" in output and f"covers #{trail[-1].seq}" in output
    # A rolled-back entry leaves no checkpoint.
    record("note.created", consult_id=1)
    db.session.rollback()
    assert len(_lines(checkpoint_file)) == len(lines)


def test_the_key_is_not_the_databases(app, checkpoint_file, monkeypatch):
    settings = Settings.from_config(app.config)
    key = load_key(settings, create=True)
    monkeypatch.setitem(app.config, "SECRET_KEY", "another secret")
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", "another chain key")
    assert load_key(Settings.from_config(app.config)) == key
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", "from the environment")
    assert load_key(Settings.from_config(app.config)) != key


@pytest.mark.parametrize("count", [1, 10])
def test_entries_cut_off_the_end_are_named(app, make_trail, count):
    make_trail(15)
    first, last = cut_end(count)
    # The chain alone cannot tell: this is what the issue found.
    assert verify_chain(db.session()).intact
    code, output = run_verify(app)
    assert code == 1
    missing = f"entry #{last} is" if count == 1 else f"entries #{first}..#{last} (10 entries) are"
    assert f"TAMPERED: {missing} missing from the end of the trail" in output, output


def test_a_cut_is_found_after_more_activity_too(app, make_trail):
    make_trail(12)
    first, last = cut_end(5)
    make_trail(2)  # new entries take the deleted numbers, with other hashes
    code, output = run_verify(app)
    assert code == 1
    assert f"entries #{last - 2}..#{last} (3 entries) are missing from the end" in output
    assert f"entry #{first} (id" in output and "does not match checkpoint" in output


def test_an_entry_rewritten_with_the_chain_key_does_not_match_its_checkpoint(app, make_trail):
    """Whoever also holds the chain key can rebuild the chain, but not the checkpoints."""
    from telehealth.audit.chain import _key, entry_hash

    trail = make_trail(6)
    victim = trail[-1]
    victim.detail = '{"n": 1000}'
    forged = entry_hash(victim, victim.prev_hash, _key())
    db.session.expire_all()
    tamper("UPDATE audit_events SET detail = :d, hash = :h WHERE id = :id",
           d='{"n": 1000}', h=forged, id=victim.id)
    db.session.execute(db.text("UPDATE audit_chain_head SET last_hash = :h"), {"h": forged})
    db.session.commit()
    assert verify_chain(db.session()).intact
    code, output = run_verify(app)
    assert code == 1 and f"entry #{victim.seq} (id {victim.id}) does not match" in output


def _unreadable_time() -> str:
    # PostgreSQL stores only real timestamps, but Python cannot read 'infinity'.
    return "infinity" if is_postgres() else "29/11/2026 noon"


@pytest.mark.parametrize(("column", "value", "message"), [
    ("at", None, "its time"),
    ("detail", "{not json", "its detail '{not json' is not a JSON object"),
    ("detail", "[1, 2]", "its detail '[1, 2]' is not a JSON object"),
])
def test_an_unreadable_entry_is_reported_by_its_number(app, make_trail, column, value,
                                                       message):
    victim = make_trail(8)[4]
    seq, victim_id = victim.seq, victim.id
    tamper(f"UPDATE audit_events SET {column} = :v WHERE id = :id",
           v=value or _unreadable_time(), id=victim_id)
    code, output = run_verify(app)
    assert code == 1
    assert f"entry #{seq} (id {victim_id}) is unreadable: {message}" in output, output
    # One bad entry does not hide the others: the walk goes on past it.
    assert "missing" not in output and f"#{seq + 1}" not in output


def test_text_that_is_not_utf8_is_reported_on_sqlite(app, make_trail):
    if is_postgres():
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    victim = make_trail(3)[1]
    seq, victim_id = victim.seq, victim.id
    tamper("UPDATE audit_events SET detail = CAST(X'FFFE' AS TEXT), at = X'FF' "
           "WHERE id = :id", id=victim_id)
    code, output = run_verify(app)
    assert code == 1
    assert f"entry #{seq} (id {victim_id}) is unreadable: its detail is not text; its time " \
        "is not text" in output


def test_an_entry_with_an_unreadable_time_stops_the_backup_with_a_sentence(app, make_trail,
                                                                           tmp_path):
    trail = make_trail(2)
    tamper("UPDATE audit_events SET at = :v WHERE id = :id", v=_unreadable_time(),
           id=trail[0].id)
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b.tar.gz")])
    assert result.exit_code == 1 and "the backup failed" in result.output
    assert not isinstance(result.exception, ValueError | KeyError)
    assert not list(tmp_path.glob("b.tar.gz*"))


# ------------------------------------------------------------ the checkpoint file itself


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_an_edited_checkpoint_is_reported(app, make_trail, checkpoint_file):
    make_trail(6)
    lines = checkpoint_file.read_text().splitlines()
    fields = json.loads(lines[3])
    fields["seq"] += 1
    lines[3] = json.dumps(fields)
    _rewrite(checkpoint_file, lines)
    code, output = run_verify(app)
    assert code == 1
    assert f"{checkpoint_file} line 4 was edited: its signature does not match" in output


def test_a_line_that_is_not_a_checkpoint_is_reported(app, make_trail, checkpoint_file):
    make_trail(3)
    with open(checkpoint_file, "a") as fh:
        fh.write("all is well\n")
    code, output = run_verify(app)
    assert code == 1 and "is not a checkpoint: the file was edited" in output


def test_a_checkpoint_file_cut_in_the_middle_of_a_line_is_reported(app, make_trail,
                                                                   checkpoint_file):
    make_trail(5)
    data = checkpoint_file.read_bytes()
    checkpoint_file.write_bytes(data[:-40])
    count = data.count(b"\n")
    code, output = run_verify(app)
    assert code == 1
    assert f"ends in the middle of a checkpoint (line {count}): the file was truncated" \
        in output
    # The next checkpoint starts on a line of its own and the cut line stays visible.
    make_trail(1)
    assert json.loads(checkpoint_file.read_text().splitlines()[-1])["n"] == count
    code, output = run_verify(app)
    assert code == 1 and f"line {count} is unreadable" in output


def test_checkpoint_lines_removed_from_the_middle_or_the_start_are_reported(
        app, make_trail, checkpoint_file):
    make_trail(6)
    lines = checkpoint_file.read_text().splitlines()
    _rewrite(checkpoint_file, lines[:2] + lines[5:])
    code, output = run_verify(app)
    assert code == 1 and f"checkpoints 3..5 are missing from {checkpoint_file}" in output
    _rewrite(checkpoint_file, lines[2:])
    code, output = run_verify(app)
    assert code == 1 and f"checkpoints 1..2 are missing from the start of {checkpoint_file}" \
        in output


def test_a_missing_checkpoint_file_is_reported(app, make_trail, checkpoint_file):
    make_trail(2)
    checkpoint_file.unlink()
    code, output = run_verify(app)
    assert code == 1 and f"the checkpoint file {checkpoint_file} does not exist" in output


def test_a_checkpoint_signed_with_another_key_is_refused(app, make_trail, checkpoint_file):
    trail = make_trail(3)
    forged = sign({"v": 1, "kind": "checkpoint", "n": 99, "seq": 1, "hash": trail[0].hash,
                   "at": clock.now().isoformat(), "prev": ""}, b"k" * 32)
    with open(checkpoint_file, "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    code, output = run_verify(app)
    assert code == 1
    ours = key_id(load_key(Settings.from_config(app.config)))
    assert f"was signed with another key (key id {key_id(b'k' * 32)}, this server's is {ours}):" \
           " refused" in output


def test_verifying_with_another_key_refuses_every_checkpoint(app, make_trail, checkpoint_file,
                                                              monkeypatch):
    make_trail(3)
    lines = checkpoint_file.read_text().splitlines()
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", "not the key that signed them")
    code, output = run_verify(app)
    assert code == 1 and output.count("was signed with another key") == len(lines)
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", None)
    Path(app.config["AUDIT_CHECKPOINT_KEY_FILE"]).unlink()
    code, output = run_verify(app)
    assert code == 1 and "CANNOT CHECK: there is no checkpoint key" in output


def test_old_entries_no_checkpoint_covers_are_worth_a_warning(app, make_trail, checkpoint_file):
    trail = make_trail(4)
    lines = checkpoint_file.read_text().splitlines()
    _rewrite(checkpoint_file, lines[:-2])  # whole lines cut off the end
    code, output = run_verify(app)
    assert code == 0 and "WARNING" not in output  # a checkpoint may still be on its way
    clock.freeze(clock.now() + timedelta(minutes=5))
    code, output = run_verify(app)
    assert code == 0
    assert f"WARNING: entries #{trail[-2].seq}..#{trail[-1].seq} (2 entries) are not covered" \
        in output


# ------------------------------------------------------------ batching, the copy, the command


def test_checkpoints_are_batched_and_the_last_one_follows(app, make_trail, checkpoint_file,
                                                          monkeypatch):
    make_trail(0)
    before = len(_lines(checkpoint_file))
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_INTERVAL", 3.0)
    trail = make_trail(10)
    deadline = time.monotonic() + 30
    while _lines(checkpoint_file)[-1]["seq"] != trail[-1].seq:
        assert time.monotonic() < deadline, "the batched checkpoint never came"
        time.sleep(0.2)
    # Ten commits in a few seconds: far fewer checkpoints, the newest always covered.
    assert len(_lines(checkpoint_file)) - before <= 4
    assert run_verify(app)[0] == 0


@pytest.fixture()
def syslog_server(app, monkeypatch):
    """A UDP syslog receiver on a free loopback port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(10)
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_SYSLOG",
                        f"udp://127.0.0.1:{server.getsockname()[1]}")
    yield server
    server.close()


def test_a_syslog_copy_finds_a_checkpoint_file_cut_together_with_the_trail(
        app, syslog_server, make_trail, checkpoint_file, tmp_path):
    newest = make_trail(6)[-1].seq
    copy = tmp_path / "syslog"
    with open(copy, "wb") as fh:  # what the log host keeps, one message a line
        for _ in range(len(_lines(checkpoint_file))):
            fh.write(b"Nov 29 23:59:59 telehealth " + syslog_server.recv(4096) + b"\n")
            fh.write(b"Nov 29 23:59:59 cron[12]: unrelated line\n")
    assert run_verify(app, "--checkpoints", str(copy))[0] == 0
    # Someone with the database and the instance folder cuts both ends.
    first, last = cut_end(3)
    lines = checkpoint_file.read_text().splitlines()
    _rewrite(checkpoint_file, [line for line in lines if json.loads(line)["seq"] < first])
    code, output = run_verify(app)
    assert code == 0  # the file alone cannot tell any more
    code, output = run_verify(app, "--checkpoints", str(copy))
    assert code == 1
    assert f"entries #{first}..#{last} (3 entries) are missing from the end" in output
    assert f"{checkpoint_file} ends at checkpoint" in output and "was cut" in output
    assert newest == last


def test_the_checkpoint_command_starts_a_file_after_an_upgrade(app, make_trail,
                                                               checkpoint_file):
    trail = make_trail(3)
    checkpoint_file.unlink()
    runner = app.test_cli_runner()
    assert run_verify(app)[0] == 1
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    assert f"Checkpoint 1 of entry #{trail[-1].seq} written" in result.output
    assert run_verify(app)[0] == 0
    cut_end(1)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 1 and "none written" in result.output
