"""Security headers on every response; templates that a strict CSP does not break."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

import telehealth
from telehealth.security.headers import content_security_policy

TEMPLATES = sorted(Path(telehealth.__file__).parent.rglob("templates/**/*.html"))


def _check_common(response):
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_headers_on_pages_files_errors_and_json(client, auth, build_case):
    objects = build_case("accepted")
    anonymous = [client.get("/login"), client.get("/nowhere")]
    auth.login(objects["clinician"])
    patient_data = [
        client.get("/"),
        client.get(f"/consults/{objects['consult'].id}"),
        client.get(f"/attachments/{objects['attachment'].id}"),
        client.get(f"/api/consults/{objects['consult'].id}"),
        client.get("/consults/999999"),
    ]
    for response in anonymous + patient_data:
        response.close()
        _check_common(response)
        assert response.headers["Cache-Control"] == "no-store"
    static = client.get("/static/style.css")
    static.close()
    _check_common(static)
    assert "no-store" not in static.headers.get("Cache-Control", "")


def test_hsts_only_over_https(app, client, monkeypatch):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    monkeypatch.setitem(app.config, "HSTS", True)
    assert "max-age=" in client.get("/login").headers["Strict-Transport-Security"]


def test_a_deployment_can_add_csp_sources_without_weakening_scripts():
    policy = content_security_policy({"connect-src": ["wss://media.example.org"]})
    assert "connect-src 'self' wss://media.example.org" in policy
    assert "script-src 'self';" in policy


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(template):
    source = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source), "inline <script>"
    assert not re.search(r"\sstyle\s*=", source), "style attribute"
    assert not re.search(r"<style", source), "<style> element"
    assert not re.search(r"\son[a-z]+\s*=", source), "inline event handler"
    assert "javascript:" not in source


def test_error_page_has_an_error_id_in_the_log_and_no_trace(app, client, auth, world, caplog,
                                                            monkeypatch):
    def broken_view():
        raise RuntimeError("database password is hunter2; patient P-001")

    monkeypatch.setitem(app.view_functions, "main.dashboard", broken_view)
    auth.login(world["clinician"])
    with caplog.at_level(logging.ERROR):
        response = client.get("/")
    assert response.status_code == 500
    assert "Traceback" not in response.text and "hunter2" not in response.text
    assert "P-001" not in response.text
    error_id = re.search(r"Error reference: ([0-9a-f]{12})", response.text).group(1)
    assert error_id in caplog.text
    _check_common(response)
