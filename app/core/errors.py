"""Domain errors and the one place that turns any error into JSON (for /api) or a page."""

import contextlib
import logging
import traceback
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)


class DomainError(Exception):
    """An error a user can read: an HTTP status, a short code or sentence, optional detail."""

    status = 400
    error = "bad request"

    def __init__(self, error: str | None = None, detail: Any = None, *, status: int | None = None):
        super().__init__(error or self.error)
        self.error = error or self.error
        self.detail = detail
        if status is not None:
            self.status = status


class BadRequest(DomainError):
    status = 400
    error = "invalid request"


class Unauthorized(DomainError):
    status = 401
    error = "authentication required"


class Forbidden(DomainError):
    status = 403
    error = "forbidden"


class NotFound(DomainError):
    status = 404
    error = "not found"


class Conflict(DomainError):
    status = 409
    error = "conflict"


class ServiceUnavailable(DomainError):
    status = 503
    error = "service unavailable"


def wants_json() -> bool:
    """Answer JSON for the API and for clients that prefer it over HTML."""
    if request.path.startswith("/api/") or request.path == "/api":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, error: str, detail: Any = None):
    """Build the JSON or HTML answer for an error."""
    if wants_json():
        body = {"error": error}
        if detail is not None:
            body["detail"] = detail
        return jsonify(body), status
    return render_template("error.html", status=status, error=error, detail=detail), status


def init_app(app: Flask) -> None:
    """Register the handlers for domain errors, HTTP errors and unexpected exceptions."""

    @app.before_request
    def _no_nul_in_the_path():
        # A path segment is looked up as text (a SOP Instance UID, a series UID): PostgreSQL text
        # cannot hold NUL, so "%00" would be a 500. Bodies and query strings are checked by schemas.
        if "\x00" in request.path:
            raise BadRequest("the URL path must not contain NUL characters (%00)")

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_response(exc.status, exc.error, exc.detail)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        error = (exc.name or "error").lower()
        detail = None
        if exc.code == 413:
            detail = f"the request exceeds the upload limit of {app.config['MAX_UPLOAD_MB']} MB"
        elif exc.code == 429 or exc.code == 400 and exc.description:
            detail = str(exc.description)
        return error_response(exc.code or 500, error, detail)

    # Registered after Flask-SQLAlchemy's own teardown, so it runs first (Flask runs them in reverse).
    @app.teardown_appcontext
    def _end_session(_exc):
        # A connection that died in the request (the database restarting) cannot be rolled back:
        # discard it rather than let the session's removal raise after the answer (a 503) was made.
        try:
            db.session.remove()
        except sa.exc.SQLAlchemyError:
            log.warning("discarded a database connection that was lost during the request")
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                db.session.registry().invalidate()
            db.session.registry.clear()

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    # What the session raises when a connection died earlier in the same request.
    @app.errorhandler(sa.exc.PendingRollbackError)
    def _database_down(exc: sa.exc.SQLAlchemyError):
        # The database restarting or out of reach: a retryable 503, not a 500 with a traceback.
        # pool_pre_ping gives the next request a fresh connection once it is back.
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            db.session.rollback()
        if app.config.get("PROPAGATE_EXCEPTIONS"):
            raise exc
        cause = type(getattr(exc, "orig", None) or exc).__name__
        log.warning("database unavailable on %s %s: %s", request.method, request.url_rule, cause)
        response, status = error_response(503, "database unavailable", "try again in a moment")
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        db.session.rollback()
        if app.config.get("PROPAGATE_EXCEPTIONS"):
            raise exc
        # The type, route and frames only: an exception's message may carry patient data.
        log.error(
            "unhandled %s on %s %s\n%s",
            type(exc).__name__, request.method, request.url_rule,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return error_response(500, "internal server error")
