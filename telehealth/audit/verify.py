"""The audit trail checked against its checkpoints: what `flask audit verify` runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from telehealth.audit.chain import ChainReport, verify_chain
from telehealth.audit.checkpoints import Settings, load_key, merge_sources, read_source


def verify_trail(session: Session, settings: Settings, copies: Sequence[Path] = ()
                 ) -> ChainReport:
    """Check the chain, the checkpoint file and any copies of it against one another."""
    key = load_key(settings)
    if key is None:
        report = verify_chain(session)
        if report.entries:
            report.errors.append(
                f"there is no checkpoint key ({settings.key_file} is missing and "
                "TELEHEALTH_AUDIT_CHECKPOINT_KEY is unset): whether entries were cut off the "
                "end cannot be checked")
        return report
    primary = read_source(settings.path, key)
    sources = [primary, *(read_source(path, key, primary=False) for path in copies)]
    anchors, disagreements = merge_sources(sources)
    # A checkpoint follows a commit within the interval; past a generous margin, entries
    # still not covered suggest the file's end was cut (or the server died just then).
    report = verify_chain(session, anchors,
                          uncovered_after=timedelta(seconds=max(60.0, 3 * settings.interval)))
    problems = [problem for source in sources for problem in source.problems]
    if report.entries == 0 and not settings.path.exists():
        problems = [p for p in problems if not p.endswith(" does not exist")]
    elif report.entries and not primary.checkpoints and not primary.problems:
        problems.append(f"{settings.path} holds no checkpoint, though the trail has "
                        f"{report.entries} entries")
    report.problems[:0] = [*problems, *disagreements]
    report.warnings[:0] = [warning for source in sources for warning in source.warnings]
    return report
