"""One app process ("node") for the multi-process tests, served by the production server.

    TELEHEALTH_REDIS_URL=... TELEHEALTH_VIDEO_NODE_URL=... \\
    TELEHEALTH_NODE_TEST_CONFIG='{"TESTING": true, ...}' \\
    gunicorn -w 1 --threads 16 -b 127.0.0.1:PORT 'tests.video.node_server:make_app()'

The README's command (one worker, threads), with the README's environment for everything
several processes need (database, Redis, node URL, origins, public URL, deployment name,
lease): the test checks those settings as a deployment sets them. Only test-only settings
(TESTING, no CSRF on the test's sign-in) come as JSON. As in `wsgi.py`, SIGTERM moves the
process's calls at once.
"""

from __future__ import annotations

import json
import os
from typing import Any


def make_app() -> Any:
    """The app as `wsgi.py` builds it, plus the test-only settings."""
    from telehealth import create_app
    from telehealth.video.hub import close_on_sigterm

    app = create_app(json.loads(os.environ.get("TELEHEALTH_NODE_TEST_CONFIG") or "{}"))
    close_on_sigterm(app)
    return app
