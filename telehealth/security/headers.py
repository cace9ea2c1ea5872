"""Security headers on every response, and no caching of anything but static files."""

from __future__ import annotations

from flask import current_app, g, request
from werkzeug.wrappers import Response

from telehealth.weight import is_static_endpoint

# No 'unsafe-inline' anywhere: templates carry no inline script, handler or style attribute.
BASE_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "media-src": ["'self'", "blob:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def content_security_policy(extra: dict[str, list[str]] | None = None) -> str:
    """The CSP header value: the base policy plus a deployment's extra sources."""
    policy = {name: list(sources) for name, sources in BASE_POLICY.items()}
    for name, sources in (extra or {}).items():
        policy.setdefault(name, []).extend(s for s in sources if s not in policy.get(name, []))
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in policy.items())


def allow_for_this_page(directive: str, sources: list[str]) -> None:
    """Widen this response's CSP (say, the call page's socket on another node), no other."""
    extra = g.setdefault("csp_extra", {})
    extra.setdefault(directive, []).extend(sources)


def cache_privately(response: Response, seconds: int) -> Response:
    """Let this one browser keep this response a short while (photo previews); never a shared
    cache. Everything else that is not static stays no-store."""
    g.cache_privately = True
    response.headers["Cache-Control"] = f"private, max-age={seconds}"
    return response


def apply_security_headers(response: Response) -> Response:
    """after_request: headers that keep pages out of frames, caches and content sniffing."""
    headers = response.headers
    extra = {name: list(sources) for name, sources in current_app.config["CSP_EXTRA"].items()}
    for name, sources in g.get("csp_extra", {}).items():
        extra.setdefault(name, []).extend(sources)
    headers["Content-Security-Policy"] = content_security_policy(extra)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(self), microphone=(self), geolocation=()"
    if current_app.config["HSTS"]:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if not is_static_endpoint(request.endpoint) and not g.get("cache_privately"):
        # Pages and files may show patient data: never keep them in a shared or disk cache.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response
