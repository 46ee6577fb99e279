"""Realtime consultation rooms: chat, presence, the shared viewer and annotations."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Give the app its presence store, rate limiters and HTTP routes; drop those who lose access live."""
    from app.cases.signals import case_moved, participant_removed
    from app.consult.events import recheck_room
    from app.consult.presence import build_presence
    from app.consult.routes import bp
    from app.core.ratelimit import RateLimiter

    app.extensions["presence"] = build_presence(app.config)
    app.extensions["message_limiter"] = RateLimiter(limit=app.config["CHAT_RATE_LIMIT"], window=10.0)
    app.extensions["relay_limiter"] = RateLimiter(limit=app.config["SOCKET_RELAY_EVENTS_PER_SECOND"], window=1.0)
    app.extensions["socket_refusals"] = RateLimiter(limit=app.config["SOCKET_REFUSALS_PER_MINUTE"], window=60.0)
    app.register_blueprint(bp)
    participant_removed.connect(recheck_room, sender=app)
    case_moved.connect(recheck_room, sender=app)
