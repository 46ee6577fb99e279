"""Huizhen application factory."""

import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask

from app.extensions import csrf, db, limiter, login_manager, migrate, socketio
from config import Config

log = logging.getLogger(__name__)


def create_app(config_class: type[Config] = Config, **overrides) -> Flask:
    """Build the Flask app from the given config class plus keyword overrides."""
    app = Flask(__name__, instance_relative_config=False, static_folder=None)  # pages serve app/web/static
    _configure(app, config_class, overrides)
    _load_secret_key(app)
    _init_extensions(app)
    _register_blueprints(app)
    _register_error_handlers(app)
    _register_cli(app)
    return app


def _configure(app: Flask, config_class: type[Config], overrides: dict) -> None:
    # Overrides become class attributes, so settings derived in config.py (MAX_CONTENT_LENGTH)
    # and its checks (ProductionConfig's SECRET_KEY) see them.
    configured = type(config_class.__name__, (config_class,), dict(overrides))
    app.config.from_object(configured())
    app.config.update(overrides)
    app.instance_path = app.config["INSTANCE_PATH"]
    # Request numbers are finite and fit the database (app.core.schemas): the JSON parser refuses
    # NaN/Infinity literals and <int:...> in a URL only matches ids an INTEGER column can hold.
    from app.core.schemas import IdConverter, StrictJSONProvider

    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    app.url_map.converters["int"] = IdConverter
    from app.core.wsgi import ReadTimeout, Utf8QueryString

    app.wsgi_app = ReadTimeout(Utf8QueryString(app.wsgi_app), app.config["UPLOAD_READ_TIMEOUT_SECONDS"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        raise RuntimeError("SQLALCHEMY_DATABASE_URI is not configured")


def _load_secret_key(app: Flask) -> None:
    """Use SECRET_KEY from the config, or a random key kept in instance/ (never in the repo)."""
    if app.config.get("SECRET_KEY"):
        return
    key_file = Path(app.instance_path) / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
        log.info("generated a development SECRET_KEY in %s", key_file)
    app.config["SECRET_KEY"] = key_file.read_text().strip()


def _init_extensions(app: Flask) -> None:

    from app import audit
    from app.audit import models as _audit_models  # noqa: F401 - registers the append-only guard
    from app.cases import search

    # Socket handlers must be declared before the first socketio.init_app: Flask-SocketIO keeps
    # handlers declared while no server exists and re-registers them on every later app; a
    # handler declared after that would be bound to one server only.
    from app.consult import events as _socket_events  # noqa: F401
    from app.core import signals

    db.init_app(app)
    audit.init_app(app)
    signals.init_app(app)
    search.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    socketio.init_app(
        app,
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        message_queue=app.config.get("SOCKETIO_MESSAGE_QUEUE"),
        channel=app.config["SOCKETIO_CHANNEL"],
        cors_allowed_origins=_origin_check(app),
        max_http_buffer_size=1_000_000,
    )


def _origin_check(app: Flask):
    """Return the Socket.IO origin check: the page's own origin, PUBLIC_URL's and ALLOWED_ORIGINS.

    A browser sends the login cookie with a WebSocket handshake from any site, so a page on
    another origin must be refused (cross-site WebSocket hijacking). Clients that send no Origin
    (API scripts with a token) are not browsers and engineio lets them through. X-Forwarded-*
    headers are not trusted: behind a proxy, PUBLIC_URL or ALLOWED_ORIGINS names the origin.
    """
    configured = {_origin(u) for u in [app.config["PUBLIC_URL"], *app.config["ALLOWED_ORIGINS"]] if u}

    def allowed(origin: str | None, environ: dict) -> bool:
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin is not None and origin.rstrip("/").lower() in configured | {own.lower()}

    return allowed


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def _register_blueprints(app: Flask) -> None:
    from app import consult, dicomnet, dicomweb, imaging, ohif, storage
    from app.accounts import auth
    from app.accounts.routes import bp as accounts_api
    from app.admin.routes import bp as admin_api
    from app.cases.routes import bp as cases_api
    from app.core.openapi import bp as openapi_bp
    from app.imaging.routes import bp as imaging_api
    from app.metrics.pages import bp as metrics_pages
    from app.metrics.routes import bp as metrics_api
    from app.notifications.routes import bp as notifications_api
    from app.orgs.pages import bp as org_pages
    from app.orgs.routes import bp as orgs_api
    from app.postings.routes import bp as postings_api
    from app.teaching.pages import bp as teaching_pages
    from app.teaching.routes import bp as teaching_api
    from app.web import i18n
    from app.web.routes import bp as web_bp

    auth.init_app(app)
    storage.init_app(app)
    imaging.init_app(app)
    app.register_blueprint(accounts_api)
    app.register_blueprint(cases_api)
    app.register_blueprint(imaging_api)
    dicomnet.init_app(app)
    dicomweb.init_app(app)
    ohif.init_app(app)
    app.register_blueprint(notifications_api)
    consult.init_app(app)
    app.register_blueprint(orgs_api)
    app.register_blueprint(teaching_api)

    app.register_blueprint(metrics_api)
    app.register_blueprint(postings_api)
    app.register_blueprint(admin_api)
    app.register_blueprint(openapi_bp)
    i18n.init_app(app)
    app.register_blueprint(web_bp)
    app.register_blueprint(org_pages)
    app.register_blueprint(teaching_pages)

    app.register_blueprint(metrics_pages)


def _register_error_handlers(app: Flask) -> None:
    from app.core import accesslog, errors, headers

    errors.init_app(app)
    headers.init_app(app)
    accesslog.init_app(app)


def _register_cli(app: Flask) -> None:
    from app.accounts import cli
    from app.metrics import cli as metrics_cli
    from app.storage import cli as storage_cli

    cli.init_app(app)
    storage_cli.init_app(app)
    metrics_cli.init_app(app)
