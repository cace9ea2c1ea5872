"""Trust: security headers, idle time-out, sign-in limits and the second factor."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the security blueprint and the request hooks."""
    from telehealth.security import headers, sessions, views

    app.register_blueprint(views.bp)
    app.before_request(sessions.enforce_idle_timeout)
    app.before_request(views.require_second_factor)
    app.after_request(headers.apply_security_headers)
