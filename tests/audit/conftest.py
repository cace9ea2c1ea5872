"""Fixtures shared with the security tests, and a checkpoint file of each test's own."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.security.conftest import build_case  # noqa: F401


@pytest.fixture(autouse=True)
def checkpoint_file(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[Path]:
    """Checkpoints of this test's chain only, written at every commit, with a fresh key."""
    path = tmp_path / "checkpoints" / "audit_checkpoints.jsonl"
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_FILE", str(path))
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY_FILE", str(path.parent / "key"))
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_KEY", None)
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_INTERVAL", 0.0)
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_SYSLOG", "")
    yield path
