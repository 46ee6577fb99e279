"""Who is calling: bearer tokens for the API, the login session for pages, and CSRF for both."""

from functools import wraps

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from app.accounts import service
from app.accounts.models import User
from app.core.errors import Unauthorized, error_response, wants_json
from app.extensions import csrf, login_manager

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_token(req=request) -> str | None:
    """Return the token from an ``Authorization: Bearer`` header, if any."""
    header = req.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def request_user_id() -> int | None:
    """The id of the user making this request, or None if nobody is logged in.

    A bearer token is resolved without loading the user (``service.user_id_for_token``): the
    caller must refuse a deactivated user, as ``cases.permissions.require_ids`` does. Without a
    token, the session's logged-in user.
    """
    token = bearer_token()
    if token is not None:
        return service.user_id_for_token(token)
    return current_user.id if current_user.is_authenticated else None


class _SessionInterface(SecureCookieSessionInterface):
    """Requests with a bearer token get a fresh session: the cookie plays no part in them.

    Otherwise a browser session holding only a CSRF token (any page visited) fails Flask-Login's
    strong session protection, and the token would never be looked at.
    """

    def open_session(self, app, request):
        if bearer_token(request) is not None:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Wire Flask-Login (sessions and bearer tokens) and the CSRF check into the app."""
    app.session_interface = _SessionInterface()
    login_manager.login_view = "web.login"
    login_manager.session_protection = "strong"
    # The cookies name a browser login, not only a user, so that logging out ends every copy of them.
    login_manager.id_attribute = "get_login_id"

    @login_manager.user_loader
    def _load_user(login_id: str) -> User | None:
        return service.user_for_login_id(login_id)

    @login_manager.request_loader
    def _load_from_header(req) -> User | None:
        token = bearer_token()
        if token is None:
            return None
        found = service.user_for_token(token)
        if found is None:
            return None
        g.api_token = found[1]
        g.auth_via_token = True
        return found[0]

    @login_manager.unauthorized_handler
    def _unauthorized():
        if wants_json():
            detail = "invalid or expired token" if bearer_token() else "send Authorization: Bearer <token>"
            return error_response(401, Unauthorized.error, detail)
        from flask import redirect, url_for

        return redirect(url_for("web.login", next=request.full_path))

    @app.before_request
    def _csrf_for_session_requests():
        # A bearer token cannot be sent by a cross-site form, so only requests that rely on
        # the session cookie need the CSRF token.
        if request.method in SAFE_METHODS or bearer_token() is not None:
            return None
        view = app.view_functions.get(request.endpoint or "")
        if view is None or getattr(view, "csrf_exempt", False):
            return None  # unknown routes answer 404; exempt views take no cookie-based action
        if request.path.startswith("/api/") and not current_user.is_authenticated:
            return None  # no session to ride on: the route answers 401 itself
        header = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token")
        if header is not None:
            # Checked from the header alone: csrf.protect() would read request.form first, which
            # parses a whole multipart upload before the streaming ingest gets to see it.
            try:
                validate_csrf(header)
            except ValidationError as exc:
                raise CSRFError(exc.args[0]) from None
            return None
        csrf.protect()
        return None

    @app.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError):
        return error_response(400, "csrf token missing or invalid", exc.description)


def csrf_exempt(view):
    """Mark a view that acts on no session state (e.g. exchanging a password for a token)."""
    view.csrf_exempt = True
    return view


def api_login_required(view):
    """Require a logged-in user (bearer token or session); answer 401 JSON otherwise."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        return view(*args, **kwargs)

    wrapper.requires_auth = True
    return wrapper


def failed_login(response) -> bool:
    """Whether a login attempt counts against the login limits: only one that failed does.

    A hospital's doctors often share one address (its NAT): counting successful logins too made the
    eleventh login of a busy minute a 429 for someone with the right password. Guessing is what the
    limits are for, and every guess fails.
    """
    return response.status_code >= 400


def login_account_key() -> str:
    """Rate-limit key of a login attempt: the account's email (from the form or the JSON body)."""
    body = request.get_json(silent=True) if request.is_json else None
    email = body.get("email") if isinstance(body, dict) else request.form.get("email")
    return "login-account:" + (email.strip().lower() if isinstance(email, str) else "")
