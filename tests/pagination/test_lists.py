"""Every list page and API list costs a fixed number of SQL statements, and on PostgreSQL
each list query walks an index, whatever the number of rows."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event, select, text, update

from bench.fill import Network, fill_consults, fill_roster, reset_sequences
from telehealth.accounts.models import User, user_specialties
from telehealth.accounts.services import hash_password
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from tests.conftest import PASSWORD, _empty_tables, need_service

MAX_STATEMENTS = 25


def list_pages(net: Network) -> list[tuple[str, str]]:
    """(who, url) for every list, its filters and the pages next to them."""
    consult_id = net.consult_ids[0]
    # A consult someone on the roster could take: the ranking runs in full.
    specialty_ids = db.session.scalars(select(user_specialties.c.specialty_id).where(
        user_specialties.c.user_id == select(User.id).where(
            User.email == net.specialist_emails[0]).scalar_subquery())).all()
    db.session.execute(update(Consult).where(Consult.id == consult_id).values(
        specialty_id=specialty_ids[0], status=ConsultStatus.ESCALATED, specialist_id=None))
    db.session.commit()
    escalated = consult_id
    coordinator, clinician = net.coordinator_emails[0], net.clinician_emails[0]
    specialist, admin = net.specialist_emails[0], net.admin_email
    return [
        (coordinator, "/"),
        (coordinator, "/?status=all&sort=newest"),
        (coordinator, "/?status=closed&specialty=1&urgency=routine"),
        (coordinator, "/?clinic=1&from=2020-01-01&sort=updated"),
        (coordinator, "/escalations"),
        (coordinator, "/escalations?specialty=1"),
        (coordinator, "/api/consults"),
        (coordinator, "/api/consults?status=all&sort=newest&size=100"),
        (coordinator, "/roster"),
        (coordinator, "/roster?status=active&load=free"),
        (coordinator, "/roster/load"),
        (coordinator, f"/consults/{escalated}/matching"),
        (coordinator, f"/consults/{consult_id}"),
        (admin, "/"),
        (admin, "/admin/users"),
        (admin, "/admin/users?role=specialist"),
        (admin, "/admin/clinics"),
        (clinician, "/"),
        (clinician, "/?status=all&sort=oldest"),
        (clinician, "/api/consults"),
        (clinician, f"/consults/{consult_id}"),
        (specialist, "/"),
        (specialist, "/api/consults"),
    ]


@contextmanager
def recording(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """The statements the app sends while inside (statement, parameters), from this thread:
    the test client serves the request on it, while the app's own background threads (the
    call hub's keeper ends calls nobody holds every few seconds) share the engine and would
    add their statements to whichever request they fall into."""
    seen: list[tuple[str, Any]] = []
    me = threading.get_ident()

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if threading.get_ident() == me:
            seen.append((statement, parameters))

    engine = db.engines[None] if hasattr(db, "engines") else db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def fill(consults: int, specialists: int, clinics: int = 1, years: float = 0.15) -> Network:
    net = fill_roster(specialists, clinics, hash_password(PASSWORD))
    # Everything on clinic 1 and the first specialist: every list of theirs has the rows.
    fill_consults(net, consults, busy_share=1.0 if clinics == 1 else 0.3, years=years)
    reset_sequences()
    db.session.commit()
    return net


def visit(app: Flask, pages: list[tuple[str, str]],
          each: Callable[[str, list[tuple[str, Any]]], None]) -> None:
    """GET every page signed in as its person; `each` gets the url and its statements."""
    clients: dict[str, Any] = {}
    for who, url in pages:
        if who not in clients:
            clients[who] = app.test_client()
            response = clients[who].post("/login", data={"email": who, "password": PASSWORD})
            assert response.status_code == 302, who
        clients[who].get(url)  # warm: the first request of a client loads more (session)
        with recording(app) as seen:
            response = clients[who].get(url)
        assert response.status_code == 200, (url, response.status_code)
        each(f"{who.split('@')[0]} {re.sub(r'/[0-9]+', '/<id>', url)}", seen)


def statement_counts(app: Flask, net: Network) -> dict[str, int]:
    counts: dict[str, int] = {}
    visit(app, list_pages(net), lambda key, seen: counts.__setitem__(key, len(seen)))
    return counts


def test_each_list_costs_the_same_statements_for_5_and_200_rows(app: Flask) -> None:
    small = statement_counts(app, fill(consults=5, specialists=5))
    db.session.remove()
    _empty_tables()
    large = statement_counts(app, fill(consults=200, specialists=200))
    assert large == small
    assert max(large.values()) <= MAX_STATEMENTS, large


def test_a_cursor_walks_every_row_once(app: Flask, client: Any) -> None:
    net = fill(consults=120, specialists=3)
    client.post("/login", data={"email": net.coordinator_emails[0], "password": PASSWORD})
    seen: list[int] = []
    cursor = ""
    for _page in range(10):
        body = client.get(f"/api/consults?status=all&size=25&cursor={cursor}").json
        seen += [row["id"] for row in body["items"]]
        if not body["next_cursor"]:
            break
        cursor = body["next_cursor"]
    assert sorted(seen) == seen and len(seen) == len(set(seen)) == 120
    assert client.get("/api/consults?cursor=not-ours").status_code == 400
    assert client.get("/api/consults?status=lost").status_code == 400
    assert client.get("/?size=x").status_code == 400


SEQ_SCAN = re.compile(r"Seq Scan on (consults|offers|notes|note_revisions|users)\b")
# Queries that read every specialist by nature, each once per page, not a list: the roster's
# "accounts without a profile" repair and the count behind the load report's busiest 10%.
WHOLE_ROSTER = ("specialist_profiles.user_id = users.id)", "count(users.id) AS count_1")


def test_every_list_query_uses_an_index_on_postgresql(app: Flask) -> None:
    if db.engine.dialect.name != "postgresql":
        need_service("PostgreSQL", "set TELEHEALTH_TEST_DATABASE_URL to a PostgreSQL database")
    net = fill(consults=6000, specialists=3000, clinics=20, years=2)
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    plans: dict[str, str] = {}
    explained: list[str] = []

    def explain(key: str, seen: list[tuple[str, Any]]) -> None:
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                for statement, parameters in seen:
                    if not statement.lstrip().upper().startswith("SELECT"):
                        continue
                    if any(marker in statement for marker in WHOLE_ROSTER):
                        continue
                    cursor.execute("EXPLAIN " + statement, parameters)
                    explained.append(key)
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                    if SEQ_SCAN.search(plan):
                        plans[key] = f"{statement}\n{plan}"
        finally:
            raw.close()

    pages = list_pages(net)
    visit(app, pages, explain)
    assert len(set(explained)) == len(pages)  # every page's queries were looked at
    assert not plans, "\n\n".join(f"{k}:\n{v}" for k, v in plans.items())
    assert db.session.scalar(select(db.func.count(User.id))) > 3000


# ---------------------------------------------------------------- the consult page's thread


def add_thread(consult_id: int, notes: int) -> None:
    """`notes` notes on the consult, in French, each with what the page shows per note: an
    amended text, a file, a translation into English (people's and verified on even notes, a
    machine's draft on odd ones, one of the earlier text on every third) and open requests."""
    from telehealth import clock
    from telehealth.consults.models import Attachment
    from telehealth.notes.models import Note, NoteKind, NoteRevision
    from telehealth.translation.models import (
        NoteTranslation,
        TranslationMethod,
        TranslationRequest,
        TranslationState,
    )

    consult = db.session.get(Consult, consult_id)
    assert consult is not None and consult.specialist_id is not None
    people = [consult.created_by_id, consult.specialist_id]
    now = clock.now()
    base = (db.session.scalar(select(db.func.max(Note.id))) or 0) + 1
    revision = (db.session.scalar(select(db.func.max(NoteRevision.id))) or 0) + 1
    for n in range(notes):
        note_id, author, other = base + n, people[n % 2], people[(n + 1) % 2]
        db.session.add(Note(id=note_id, consult_id=consult_id, author_id=author,
                            kind=NoteKind.NOTE, created_at=now, language="fr",
                            language_detected=n % 3 == 0))
        db.session.flush()
        for number in (1, 2):
            db.session.add(NoteRevision(id=revision, note_id=note_id, number=number,
                                        author_id=author, created_at=now,
                                        body=f"Texte {n}, version {number}."))
            revision += 1
        db.session.flush()
        current, earlier = revision - 1, revision - 2
        human = n % 2 == 0
        db.session.add(NoteTranslation(
            note_id=note_id, revision_id=earlier if n % 3 == 0 else current, language="en",
            text=f"Text {n}.", method=TranslationMethod.HUMAN if human
            else TranslationMethod.MACHINE,
            state=TranslationState.VERIFIED if human else TranslationState.DRAFT,
            created_by_id=author, verified_by_id=other if human else None,
            verified_at=now if human else None))
        db.session.add(TranslationRequest(note_id=note_id, language="es",
                                          requested_by_id=other))
        if n % 3 == 0:
            db.session.add(TranslationRequest(note_id=note_id, language="en",
                                              requested_by_id=other))
        db.session.add(Attachment(
            consult_id=consult_id, note_id=note_id, uploaded_by_id=author,
            original_name=f"scan{n}.png", stored_name=f"thread-{note_id}.png",
            content_type="image/png", size=2048, sha256="0" * 64, created_at=now))
    db.session.execute(update(User).values(locale="en"))
    db.session.commit()


def consult_page_counts(app: Flask, notes: int) -> dict[str, int]:
    net = fill(consults=3, specialists=3)
    consult_id = db.session.scalar(select(Consult.id).where(
        Consult.specialist_id.is_not(None)).order_by(Consult.id).limit(1))
    assert consult_id is not None
    add_thread(consult_id, notes)
    consult = db.session.get(Consult, consult_id)
    assert consult is not None
    readers = [net.coordinator_emails[0], net.admin_email,
               db.session.get(User, consult.created_by_id).email,  # type: ignore[union-attr]
               db.session.get(User, consult.specialist_id).email]  # type: ignore[union-attr]
    counts: dict[str, int] = {}
    visit(app, [(who, f"/consults/{consult_id}") for who in readers],
          lambda key, seen: counts.__setitem__(key, len(seen)))
    return counts


def test_the_consult_page_costs_the_same_statements_for_5_and_200_notes(app: Flask) -> None:
    """Notes with translations, requests, revisions and files: one query per kind of thing,
    not one per note (the translation look-ups used to cost 3 to 4 statements a note)."""
    small = consult_page_counts(app, notes=5)
    db.session.remove()
    _empty_tables()
    large = consult_page_counts(app, notes=200)
    assert large == small
    assert max(large.values()) <= MAX_STATEMENTS, large


def test_dashboard_counts_read_only_an_index_on_postgresql(app: Flask) -> None:
    """A clinic's or a volunteer's status counts include their whole history: PostgreSQL
    answers them from (clinic_id, status) / (specialist_id, status) alone, without reading
    the consults (an index-only scan), so a long history costs index entries, not rows; the
    coordinators' open counts come from (status)."""
    if db.engine.dialect.name != "postgresql":
        need_service("PostgreSQL", "set TELEHEALTH_TEST_DATABASE_URL to a PostgreSQL database")
    net = fill(consults=4000, specialists=300, clinics=5, years=2)
    db.session.remove()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE consults"))  # the visibility map index-only needs
    plans: dict[str, str] = {}

    def explain(key: str, seen: list[tuple[str, Any]]) -> None:
        counts = [(s, p) for s, p in seen if re.match(r"\s*SELECT consults.status, count\(\*\)", s)]
        assert len(counts) == 1, (key, [s for s, _p in seen])
        raw = db.engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute("EXPLAIN " + counts[0][0], counts[0][1])
                plans[key] = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            raw.close()

    visit(app, [(net.clinician_emails[0], "/"), (net.specialist_emails[0], "/"),
                (net.coordinator_emails[0], "/")], explain)
    assert len(plans) == 3
    for key, plan in plans.items():
        assert "Index Only Scan" in plan and "consults" in plan, f"{key}:\n{plan}"
