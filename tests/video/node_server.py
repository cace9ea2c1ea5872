"""One app process ("node") for the multi-node tests, served like bench/video.py's child.

    python -m tests.video.node_server PORT '{"SQLALCHEMY_DATABASE_URI": ...}'

Prints "ready" once it listens on 127.0.0.1:PORT and serves until its stdin is closed. The
database is the test session's (already migrated); the secret key and instance folder come
from the environment the test run set.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any


def main() -> None:
    port, config = int(sys.argv[1]), json.loads(sys.argv[2])
    from werkzeug.serving import make_server

    from telehealth import create_app
    from telehealth.video.hub import close_on_sigterm, shutdown

    app = create_app(config)
    close_on_sigterm(app)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    shutdown(app)
    server.shutdown()
    thread.join(5)


def make_app() -> Any:
    """The app for the production server (`gunicorn 'tests.video.node_server:make_app()'`),
    configured from TELEHEALTH_NODE_CONFIG (JSON), with SIGTERM moving its calls."""
    from telehealth import create_app
    from telehealth.video.hub import close_on_sigterm

    app = create_app(json.loads(os.environ["TELEHEALTH_NODE_CONFIG"]))
    close_on_sigterm(app)
    return app


if __name__ == "__main__":
    main()
