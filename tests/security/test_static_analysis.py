"""bandit finds nothing of high severity; the pins avoid the known advisories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
MINIMUM = {"python-socketio": "5.16.2", "python-engineio": "4.13.2", "Werkzeug": "3.1.6"}


def test_bandit_finds_no_high_severity_issue():
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "telehealth", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    report = json.loads(result.stdout)
    assert not report["errors"], report["errors"]
    high = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
            for r in report["results"] if r["issue_severity"] == "HIGH"]
    assert not high, high


@pytest.mark.parametrize(("package", "minimum"), MINIMUM.items())
def test_pins_avoid_known_advisories(package, minimum):
    pins = (ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(package)}==(\S+)$", pins, re.MULTILINE | re.IGNORECASE)
    assert match, f"{package} is not pinned"
    assert Version(match.group(1)) >= Version(minimum)
    assert Version(version(package)) >= Version(minimum)
