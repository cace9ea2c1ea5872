"""The schema comes only from migrations, and equals what the models describe."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from telehealth.crypto import Sealed, open_secret
from telehealth.extensions import db
from tests.conftest import TEST_DATABASE_URL, another_app, need_service


def _fresh_postgres_url() -> str:
    if not TEST_DATABASE_URL:
        need_service("PostgreSQL", "TELEHEALTH_TEST_DATABASE_URL is not set")
    url = make_url(TEST_DATABASE_URL)
    name = f"{url.database}_migrations"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        need_service("PostgreSQL", str(exc))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
    else:
        yield _fresh_postgres_url()


def _differences(app) -> list:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_migrations_build_exactly_the_models(empty_database_url: str) -> None:
    app = another_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    with app.app_context():
        assert inspect(db.engine).get_table_names() == []
        upgrade()
    try:
        assert _differences(app) == []
        # And the way back works too, so a bad release can be rolled back.
        with app.app_context():
            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            upgrade()
        assert _differences(app) == []
    finally:
        with app.app_context():
            db.engine.dispose()


def test_models_have_no_table_outside_migrations(app) -> None:
    """The session database (built by migrations) has every model table."""
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in db.metadata.sorted_tables} <= tables


TOTP_REVISION = "81c21cc316e7"  # TOTP secrets encrypted at rest


def test_the_totp_migration_encrypts_existing_secrets_and_the_downgrade_decrypts_them(
        empty_database_url: str) -> None:
    app = another_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    before = ScriptDirectory.from_config(
        app.extensions["migrate"].migrate.get_config()).get_revision(TOTP_REVISION).down_revision
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    read = text("SELECT totp_secret FROM users WHERE id = 1")
    try:
        with app.app_context():
            upgrade(revision=before)
            with db.engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO users (id, email, name, password_hash, role, timezone, active, "
                    "session_token, created_at, is_translator, totp_secret) VALUES (1, "
                    "'a@example.org', 'A', 'x', 'ADMIN', 'UTC', true, 't', :at, false, :s)"),
                    {"at": datetime(2026, 11, 25), "s": secret})
            upgrade(revision=TOTP_REVISION)
            with db.engine.connect() as conn:
                stored = conn.execute(read).scalar_one()
            assert secret not in stored
            assert open_secret(Sealed(stored)) == secret
            downgrade(revision=before)
            with db.engine.connect() as conn:
                assert conn.execute(read).scalar_one() == secret
    finally:
        with app.app_context():
            db.engine.dispose()


TWO_WEEK_REVISION = "9b2e4d7a6c13"  # built-in syndromes move to count_two_weeks/_seasonal


def test_the_two_week_migration_moves_only_untouched_defaults(empty_database_url: str) -> None:
    app = another_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True})
    before = ScriptDirectory.from_config(
        app.extensions["migrate"].migrate.get_config()).get_revision(
            TWO_WEEK_REVISION).down_revision
    rows = [("awd", "count_quantile", 5), ("bloody_diarrhoea", "count_quantile", 4),
            ("meningitis", "count_quantile", 2), ("acute_jaundice", "count_quantile", 3),
            ("ili_sari", "farrington", 10)]
    read = text("SELECT code, detector, threshold FROM syndromes ORDER BY code")
    try:
        with app.app_context():
            upgrade(revision=before)
            with db.engine.begin() as conn:
                for code, detector, threshold in rows:
                    conn.execute(text(
                        "INSERT INTO syndromes (code, name, icd10_prefixes, detector, threshold, "
                        "active) VALUES (:c, :c, 'A00', :d, :t, :a)"),
                        {"c": code, "d": detector, "t": threshold, "a": True})
            upgrade(revision=TWO_WEEK_REVISION)
            with db.engine.connect() as conn:
                assert [tuple(r) for r in conn.execute(read)] == [
                    ("acute_jaundice", "count_quantile", 3),  # its default is unchanged
                    ("awd", "count_seasonal", 5),
                    ("bloody_diarrhoea", "count_quantile", 4),  # edited: left alone
                    ("ili_sari", "count_seasonal", 10),
                    ("meningitis", "count_two_weeks", 2)]
            downgrade(revision=before)
            with db.engine.connect() as conn:
                assert [tuple(r) for r in conn.execute(read)] == sorted(rows)
    finally:
        with app.app_context():
            db.engine.dispose()
