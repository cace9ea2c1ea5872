"""An outside attacker's walk: every URL rule, for every demo role and for a stranger, gets
hostile input (ids out of range, overlong strings, unknown query values, wrong content types,
malformed JSON, no CSRF token, fields of the wrong type). Never a 5xx; a 4xx is a page, or
JSON with its status on an API path."""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from telehealth.cli import DEMO_PASSWORD
from tests.weight.demo import DEMO_ROLES, seed_world

HUGE = "99999999999999999999"
LONG = "x" * 70_000
# What a form or a query might name, each given a value of the wrong kind.
FIELD_NAMES = (
    "email", "password", "name", "role", "clinic", "timezone", "locale", "language", "languages",
    "specialties", "specialty", "patient_ref", "patient_age_years", "patient_age_band",
    "patient_sex", "presenting_problem", "history", "question", "urgency", "mode", "reason",
    "outcome", "outcome_note", "body", "text", "kind", "is_answer", "code", "capacity",
    "availability", "starts_at", "ends_at", "weekday", "start", "duration_minutes", "weeks",
    "case_slots", "teaching_minutes", "certificate_percent", "topic", "status", "stage",
    "likelihood", "consequence", "note", "label", "area", "area_id", "user", "user_id",
    "specialist", "specialist_id", "image_ids", "active", "level", "submission_key", "next",
    "q", "token", "csv", "file", "files", "document", "date", "from", "to", "week", "year",
    "syndrome", "threshold", "limit", "cursor", "page", "after", "before", "sort", "order",
    "subspecialty", "licence_number", "licence_body", "licence_country", "licence_expires_on",
    "decision", "message", "title", "summary", "recommendation", "comment", "attachments",
)
WRONG_VALUES = (HUGE, "-1", "abc", LONG, "2026-13-45T25:61", "\x00\x01", "<script>x</script>",
                "'; DROP TABLE users; --", "NaN", "1e309")
QUERIES = (
    "?page=-1&cursor=%21%21%21&after=zzz&before=-99999999999999999999&limit=-5",
    f"?limit={HUGE}&page={HUGE}&cursor={'A' * 5000}&sort=%27%3Bdrop&order=sideways",
    "?date=2026-13-45&from=yesterday&to=%00&week=W99&year=-1&status=BOGUS&stage=BOGUS",
    "?q=" + "%F0%9F" * 300 + "&specialty=abc&area=-1&area_id=abc&syndrome=%00&format=exe",
    "?cursor=eyJpZCI6ICJ4In0%3D&after=eyJhIjpbXX0&next=https://evil.example/",
)
STRING_ARGS = ("x" * 400, "..%2F..%2Fetc%2Fpasswd", "%00", "-1")


def paths_for(rule: Any) -> Iterator[str]:
    """The rule's address with every variable filled with something hostile."""
    fillers: list[tuple[str, ...]] = []
    for argument in sorted(rule.arguments):
        converter = rule._converters[argument]
        name = type(converter).__name__
        if name == "IntegerConverter":
            fillers.append((HUGE, "0", "1", "2147483648"))
        elif name == "AnyConverter":
            fillers.append(tuple(sorted(converter.items))[:1])
        elif name == "PathConverter":
            fillers.append(("x.js", "../../etc/passwd"))
        else:
            fillers.append(STRING_ARGS)
    depth = max((len(f) for f in fillers), default=1)
    for i in range(depth):
        path = rule.rule
        for argument, values in zip(sorted(rule.arguments), fillers, strict=True):
            path = _fill(path, argument, values[i % len(values)])
        yield path


def _fill(path: str, argument: str, value: str) -> str:
    return re.sub(r"<(?:[^>]*:)?" + argument + ">", lambda _match: value, path)


def requests_for(rule: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
    for path in paths_for(rule):
        if "GET" in methods:
            yield "GET", path, {}
            for query in QUERIES:
                yield "GET", path + query, {}
        if "POST" in methods:
            for value in WRONG_VALUES:
                yield "POST", path, {"data": dict.fromkeys(FIELD_NAMES, value)}
            yield "POST", path, {"data": {name: [HUGE, "abc"] for name in FIELD_NAMES}}
            yield "POST", path, {"data": "{not json", "content_type": "application/json"}
            yield "POST", path, {"json": dict.fromkeys(FIELD_NAMES, [{"a": None}])}
            yield "POST", path, {"json": dict.fromkeys(FIELD_NAMES, 10 ** 30)}
            yield "POST", path, {"json": [1, 2, 3]}
            yield "POST", path, {"data": LONG, "content_type": "text/plain"}
            yield "POST", path, {"data": b"\xff\xfe\x00garbage",
                                 "content_type": "multipart/form-data; boundary=zz"}
        for other in ("PUT", "DELETE", "PATCH"):
            if other not in methods:
                yield other, path, {}
                break


def is_api(path: str) -> bool:
    return path.startswith("/api/") or "/api/" in path or path.split("?")[0].endswith("/api")


def sweep(app: Flask, client: Any, who: str) -> list[str]:
    problems = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("accounts.logout",):
            continue  # would end the walk's own session; covered by the access matrix
        for method, path, kwargs in requests_for(rule):
            try:
                response = client.open(path, method=method, **kwargs)
            except Exception as exc:  # noqa: BLE001 - report which line broke on which input
                frames = traceback.extract_tb(exc.__traceback__)
                where = next((f"{f.filename}:{f.lineno}" for f in reversed(frames)
                              if "/telehealth/" in f.filename), "?")
                problems.append(f"{who} {method} {path[:120]} raised {exc!r:.200} at {where}")
                continue
            status = response.status_code
            if status >= 500:
                problems.append(f"{who} {method} {path[:120]} {kwargs.get('content_type', '')}"
                                f" -> {status}")
            elif status >= 400 and is_api(path) and not response.is_json:
                problems.append(f"{who} {method} {path[:120]} -> {status} not JSON")
            elif status >= 400 and response.is_json and response.json.get("status") != status:
                problems.append(f"{who} {method} {path[:120]} -> {status} JSON without status")
            response.close()
    return problems


def raised_at(exc: BaseException) -> str:
    """The app's line (file:line) nearest the raise, or "?"."""
    frames = traceback.extract_tb(exc.__traceback__)
    return next((f"{f.filename}:{f.lineno}" for f in reversed(frames)
                 if "/telehealth/" in f.filename), "?")


def crashes(caplog: Any) -> set[str]:
    """The exceptions the error handler logged, each with the app's line that raised it."""
    found = set()
    for record in caplog.records:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            found.add(f"{type(exc).__name__}: {str(exc)[:200]} at {raised_at(exc)}")
    return found


@pytest.fixture()
def demo(app: Flask) -> Flask:
    seed_world(photo_size=(320, 240))
    return app


@pytest.mark.parametrize("who", [None, *DEMO_ROLES])
def test_hostile_input_to_every_route_never_gets_a_5xx(demo, who, caplog):
    client = demo.test_client()
    if who:
        signed_in = client.post("/login", data={"email": DEMO_ROLES[who],
                                                "password": DEMO_PASSWORD})
        assert signed_in.status_code == 302
    problems = sweep(demo, client, who or "stranger")
    assert problems == [], "\n".join([*sorted(crashes(caplog)), *problems[:60]])


def test_missing_csrf_token_is_a_clear_400_everywhere(demo, caplog):
    client = demo.test_client()
    client.post("/login", data={"email": DEMO_ROLES["coordinator"], "password": DEMO_PASSWORD})
    demo.config["WTF_CSRF_ENABLED"] = True
    try:
        problems = []
        for rule in demo.url_map.iter_rules():
            if "POST" not in rule.methods:
                continue
            path = next(paths_for(rule))
            for kwargs in ({"data": {"reason": "x"}}, {"json": {"reason": "x"}}):
                response = client.post(path, **kwargs)
                if response.status_code >= 500 or (response.status_code != 400
                                                   and rule.endpoint != "accounts.logout"
                                                   and response.status_code < 400):
                    problems.append((path, kwargs, response.status_code))
    finally:
        demo.config["WTF_CSRF_ENABLED"] = False
    assert problems == [], "\n".join([*sorted(crashes(caplog)), *map(str, problems)])
