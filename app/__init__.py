"""Huizhen application factory."""

import logging
import secrets
from pathlib import Path

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
    app.json.sort_keys = False
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

    from app.audit import models as _audit_models  # noqa: F401 - registers the append-only guard

    # Socket handlers must be declared before the first socketio.init_app: Flask-SocketIO keeps
    # handlers declared while no server exists and re-registers them on every later app; a
    # handler declared after that would be bound to one server only.
    from app.consult import events as _socket_events  # noqa: F401
    from app.core import signals

    db.init_app(app)
    signals.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    socketio.init_app(
        app,
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
        message_queue=app.config.get("SOCKETIO_MESSAGE_QUEUE"),
        channel=app.config["SOCKETIO_CHANNEL"],
        cors_allowed_origins=[],
        max_http_buffer_size=1_000_000,
    )


def _register_blueprints(app: Flask) -> None:
    from app import consult, dicomnet, dicomweb, imaging, ohif, storage
    from app.accounts import auth
    from app.accounts.routes import bp as accounts_api
    from app.admin.routes import bp as admin_api
    from app.cases.routes import bp as cases_api
    from app.core.openapi import bp as openapi_bp
    from app.imaging.routes import bp as imaging_api
    from app.notifications.routes import bp as notifications_api
    from app.orgs.routes import bp as orgs_api
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
    app.register_blueprint(admin_api)
    app.register_blueprint(openapi_bp)
    i18n.init_app(app)
    app.register_blueprint(web_bp)


def _register_error_handlers(app: Flask) -> None:
    from app.core import errors

    errors.init_app(app)


def _register_cli(app: Flask) -> None:
    from app.accounts import cli
    from app.storage import cli as storage_cli

    cli.init_app(app)
    storage_cli.init_app(app)
