"""Gunicorn's logger without share-link tokens in its access lines (gunicorn.conf.py's ``logger_class``).

Its own module so the app itself never imports gunicorn (``python run.py`` serves without it).
"""

from gunicorn.glogging import Logger

from app.core.accesslog import redacted


class RedactingLogger(Logger):
    """Gunicorn's logger, whose access lines carry no share-link token (see app.core.accesslog)."""

    def atoms(self, resp, req, environ, request_time):
        """Return gunicorn's log atoms with tokens redacted from the request line, path, query and headers."""
        return {key: redacted(value) for key, value in super().atoms(resp, req, environ, request_time).items()}
