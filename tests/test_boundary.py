"""One transaction per request (or command): committed when the work returns, rolled back
when it raises; a refused form comes back with the reason and nothing it wrote."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from flask import Flask, render_template_string, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from telehealth.boundary import committed, lock_wait_ran_out, on_refusal, unit_of_work
from telehealth.clinics.models import Clinic
from telehealth.errors import Conflict
from telehealth.extensions import db
from tests.conftest import another_app


def _clinics(name: str) -> int:
    return db.session.scalar(select(func.count(Clinic.id)).where(Clinic.name == name)) or 0


def _add_clinic(name: str) -> None:
    db.session.add(Clinic(name=name, country="CD", city="Goma", timezone="Africa/Lubumbashi",
                          languages="fr"))
    db.session.flush()


def test_unit_of_work_commits_what_returns_and_drops_what_raises():
    with unit_of_work():
        _add_clinic("kept")

    @committed
    def fails() -> None:
        _add_clinic("dropped")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails()
    db.session.remove()  # a fresh session sees only what was committed
    assert _clinics("kept") == 1 and _clinics("dropped") == 0


@pytest.fixture()
def boundary_app(app: Flask) -> Any:
    """An app with three routes that write a clinic: one returns, two are refused."""
    other = another_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                         "TESTING": True, "WTF_CSRF_ENABLED": False})

    @other.post("/t/ok")
    def ok() -> Any:
        _add_clinic("ok")
        return "", 302, {"Location": url_for("main.dashboard")}

    @other.post("/t/form")
    def form() -> Any:
        on_refusal(lambda: render_template_string(
            "<p>the form again</p>{% for m in get_flashed_messages() %}{{ m }}{% endfor %}"))
        _add_clinic("refused")
        raise Conflict("Somebody was faster.")

    @other.post("/t/api")
    def api() -> Any:
        _add_clinic("refused-json")
        raise Conflict("Somebody was faster.")

    with other.app_context():
        yield other
        db.session.remove()
        db.engine.dispose()  # its own pool: no connection left open behind the test


def test_a_request_commits_before_its_redirect_leaves(boundary_app):
    response = boundary_app.test_client().post("/t/ok")
    assert response.status_code == 302
    db.session.remove()
    assert _clinics("ok") == 1


def test_a_refused_form_comes_back_with_the_reason_and_keeps_nothing(boundary_app):
    response = boundary_app.test_client().post("/t/form")
    assert response.status_code == 409
    assert "the form again" in response.text and "Somebody was faster." in response.text
    db.session.remove()
    assert _clinics("refused") == 0


def test_a_refused_json_request_gets_json_and_keeps_nothing(boundary_app):
    response = boundary_app.test_client().post("/t/api", json={})
    assert response.status_code == 409 and response.json["error"] == "Somebody was faster."
    db.session.remove()
    assert _clinics("refused-json") == 0


def test_a_lock_wait_that_ran_out_is_told_apart_from_other_database_errors() -> None:
    class LockNotAvailable(Exception):
        sqlstate = "55P03"  # what psycopg raises when lock_timeout fires

    assert lock_wait_ran_out(OperationalError("x", {}, LockNotAvailable()))
    assert lock_wait_ran_out(OperationalError("x", {},
                                              sqlite3.OperationalError("database is locked")))
    assert not lock_wait_ran_out(OperationalError("x", {}, sqlite3.OperationalError("disk I/O")))
    assert not lock_wait_ran_out(ValueError("database is locked"))
