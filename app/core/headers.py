"""Security headers on every answer, in every environment (HSTS only in production)."""

from flask import Flask, request
from werkzeug.serving import WSGIRequestHandler

# Scripts only from our own static files: no inline script, no eval. Inline style attributes stay
# allowed (the viewer positions overlays with them); frames only from our own pages.
CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
))


def init_app(app: Flask) -> None:
    """Add CSP, nosniff, Referrer-Policy, no-store and (in production) HSTS to every answer."""
    # Werkzeug's server announces "Werkzeug/3.x Python/3.x"; a version banner only helps an attacker.
    WSGIRequestHandler.server_version = "Huizhen"
    WSGIRequestHandler.sys_version = ""

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        headers.setdefault("Referrer-Policy", "same-origin")
        # Pages and API answers carry case data: no cache may keep them. Static files and
        # rendered images set their own Cache-Control (private or immutable) and keep it.
        if "Cache-Control" not in headers and not (request.endpoint or "").endswith("static"):
            headers["Cache-Control"] = "no-store"
        if app.config["HSTS_SECONDS"]:
            headers.setdefault("Strict-Transport-Security", f"max-age={app.config['HSTS_SECONDS']}; includeSubDomains")
        return response
