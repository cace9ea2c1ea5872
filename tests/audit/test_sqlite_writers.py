"""SQLite (the demo's database) has no row locks: two requests at once read the same head of
the audit chain and the second failed on the unique entry number, a 500 for about one page in
five with four people walking the demo. The head is now read under SQLite's write lock."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from telehealth.audit.chain import HEAD_ID, _lock_chain
from telehealth.audit.models import AuditChainHead


def test_a_second_writer_reads_the_head_only_after_the_first_commits(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'chain.sqlite'}",
                           connect_args={"timeout": 10})
    AuditChainHead.__table__.create(engine)
    with Session(engine) as setup:
        setup.add(AuditChainHead(id=HEAD_ID, last_seq=0, last_hash=""))
        setup.commit()
    seen: list[int] = []
    first = Session(engine)
    head = _lock_chain(first)
    assert head is not None and head.last_seq == 0

    def second_writer() -> None:
        with Session(engine) as second:
            other = _lock_chain(second)
            assert other is not None
            seen.append(other.last_seq)
            second.rollback()

    thread = threading.Thread(target=second_writer)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and seen == []  # waiting for the write lock, not reading stale
    head.last_seq = 7
    first.commit()
    first.close()
    thread.join(10)
    assert seen == [7]  # numbered after the first writer's entries
    engine.dispose()
