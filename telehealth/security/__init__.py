"""Trust: security headers, idle time-out, sign-in limits and the second factor."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from telehealth import crypto
from telehealth.security import commands, headers, inputs, sessions, views
from telehealth.validation import install_json_forms


def trust_proxies(app: Flask, hops: int) -> None:
    """Take the client address and scheme from the last `hops` reverse proxies' headers."""
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


def init_app(app: Flask) -> None:
    """Register the security blueprint and the request hooks."""
    crypto.ring_for(app.config)  # a malformed TELEHEALTH_DATA_KEY stops the start, clearly

    app.request_class = inputs.CleanRequest
    install_json_forms()
    trust_proxies(app, app.config["TRUSTED_PROXIES"])
    app.register_blueprint(views.bp)
    commands.init_app(app)
    app.before_request(sessions.enforce_idle_timeout)
    app.before_request(views.require_second_factor)
    app.after_request(headers.apply_security_headers)
