"""The append-only access log."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Give the app its per-process count of refused requests (audit.service.record_refusal)."""
    from app.core.ratelimit import RateLimiter

    app.extensions["http_refusals"] = RateLimiter(limit=app.config["HTTP_REFUSALS_PER_MINUTE"], window=60.0)
