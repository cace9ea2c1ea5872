"""A fake LibreTranslate on 127.0.0.1, and a French consult with an English specialist."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from telehealth.accounts.models import Role, User
from telehealth.extensions import db
from tests.conftest import take_consult


class FakeLibreTranslate:
    """Answers POST /translate like LibreTranslate; records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, **body})
                if fake.fail:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"boom")
                    return
                answer = json.dumps({"translatedText": f"[{body['target']}] {body['q']}"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLibreTranslate:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture()
def libretranslate(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLibreTranslate]:
    with FakeLibreTranslate() as fake:
        monkeypatch.setitem(app.config, "MACHINE_TRANSLATION_URL", fake.url)
        yield fake


@pytest.fixture()
def case(world: dict[str, Any], make_consult: Callable[..., Any],
         make_user: Callable[..., User]) -> dict[str, Any]:
    """A French-speaking clinician's consult, taken by a specialist who reads only English."""
    clinician = world["clinician"]
    clinician.locale = "fr"
    specialist = make_user(Role.SPECIALIST, languages=("en",), locale="en", name="Dr Only English")
    bilingual = make_user(Role.SPECIALIST, languages=("en", "fr"), locale="en",
                          name="Dr Bilingual")
    consult = make_consult(clinician)
    take_consult(consult, specialist)
    db.session.commit()
    return {**world, "consult": consult, "specialist": specialist, "bilingual": bilingual}
