"""Realtime consultation rooms: chat, presence, the shared viewer and annotations."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Give the app its presence store, rate limiter and HTTP routes; drop removed participants live."""
    from app.cases.signals import participant_removed
    from app.consult.events import kick
    from app.consult.presence import build_presence
    from app.consult.routes import bp
    from app.consult.service import RateLimiter

    app.extensions["presence"] = build_presence(app.config)
    app.extensions["message_limiter"] = RateLimiter(limit=app.config["CHAT_RATE_LIMIT"], window=10.0)
    app.register_blueprint(bp)
    participant_removed.connect(kick, sender=app)
