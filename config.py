"""Huizhen configuration: the only module that reads the environment.

Every setting has an embedded default so that ``python run.py`` works with no set-up:
SQLite under ``instance/``, the local object store under ``uploads/``, one process.
"""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _database_url(url: str | None) -> str:
    """Return a SQLAlchemy URL, defaulting to SQLite and choosing psycopg 3 for PostgreSQL."""
    if not url:
        return f"sqlite:///{BASE_DIR / 'instance' / 'huizhen.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    """Settings for running the app; defaults are the embedded single-process setup."""

    # None means "generate one into instance/ at start-up" (see app._load_secret_key).
    SECRET_KEY = _env("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = _database_url(_env("DATABASE_URL"))
    # hide_parameters: a database error's text (logged, or in a traceback) never carries the
    # statement's values, which may be patient data (original UIDs, names).
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}

    STORAGE_BACKEND = _env("STORAGE_BACKEND", "local")
    UPLOAD_FOLDER = _env("UPLOAD_FOLDER", str(BASE_DIR / "uploads"))
    S3_ENDPOINT = _env("S3_ENDPOINT", "http://127.0.0.1:9000")
    S3_ACCESS_KEY = _env("S3_ACCESS_KEY")
    S3_SECRET_KEY = _env("S3_SECRET_KEY")
    S3_BUCKET = _env("S3_BUCKET", "huizhen")
    S3_REGION = _env("S3_REGION", "us-east-1")

    SOCKETIO_MESSAGE_QUEUE = _env("SOCKETIO_MESSAGE_QUEUE")
    SOCKETIO_ASYNC_MODE = _env("SOCKETIO_ASYNC_MODE", "threading")
    # Several deployments (or test runs) can share one Redis with their own channel and keys.
    SOCKETIO_CHANNEL = _env("SOCKETIO_CHANNEL", "huizhen")
    REDIS_KEY_PREFIX = _env("REDIS_KEY_PREFIX", "huizhen:")
    # GIL switch interval of the server process (python run.py); CPython's default is 5 ms.
    GIL_SWITCH_INTERVAL_MS = float(_env("GIL_SWITCH_INTERVAL_MS", "1"))
    # Chat messages one user may send per 10 seconds (per server process).
    CHAT_RATE_LIMIT = int(_env("CHAT_RATE_LIMIT", "20"))
    # `typing` and `viewer` events (together) one user may send per second (per server process); past
    # that they are not relayed to the room. The viewer sends one per wheel step or key repeat, at most
    # the display's frame rate (60-144 a second), typing a few a second: this is well above both.
    SOCKET_RELAY_EVENTS_PER_SECOND = int(_env("SOCKET_RELAY_EVENTS_PER_SECOND", "250"))
    # How often each process drops its sockets whose account was deactivated or whose API token was
    # revoked or expired (their events are refused at once; this bounds how long they still receive
    # the room's broadcasts).
    SOCKET_AUTH_RECHECK_SECONDS = float(_env("SOCKET_AUTH_RECHECK_SECONDS", "5"))
    # Socket events refused (403/404, each audited) per user per minute before that user's further
    # events and new connections are refused unaudited: a client probing case ids cannot flood the audit log.
    SOCKET_REFUSALS_PER_MINUTE = int(_env("SOCKET_REFUSALS_PER_MINUTE", "20"))
    # The same over HTTP: refused requests (403/404) audited per user (per address without one) per
    # minute; past that, a refused request is answered 429 and not audited (allowed ones are served).
    HTTP_REFUSALS_PER_MINUTE = int(_env("HTTP_REFUSALS_PER_MINUTE", "20"))

    HOST = _env("HOST", "127.0.0.1")
    PORT = int(_env("PORT", "5000"))
    # The production server (gunicorn, see gunicorn.conf.py): worker processes and threads per worker.
    # A WebSocket holds a thread for as long as it is open. Socket.IO's long-polling sessions live
    # in one worker, so browsers need WORKERS=1 per server (README, "Production").
    WORKERS = int(_env("WORKERS", "1"))
    THREADS = int(_env("THREADS", "100"))
    MAX_UPLOAD_MB = int(_env("MAX_UPLOAD_MB", "512"))
    # Longest wait for the next bytes of a request (or for a client to take the next chunk of an
    # answer): a stalled upload then frees its server thread. 0 turns the bound off.
    UPLOAD_READ_TIMEOUT_SECONDS = float(_env("UPLOAD_READ_TIMEOUT_SECONDS", "60"))
    # Per-process caches of stored DICOM instances and rendered frames.
    INSTANCE_CACHE_MB = int(_env("INSTANCE_CACHE_MB", "256"))
    RENDER_CACHE_MB = int(_env("RENDER_CACHE_MB", "128"))
    # Where the generated development secret key lives (tests point it at a temp folder).
    INSTANCE_PATH = str(BASE_DIR / "instance")

    # DICOM C-STORE/C-ECHO listener (app/dicomnet): `flask --app run dicom-scp`, and inside
    # `python run.py` unless DICOM_SCP_ENABLED=0. DICOM_PUBLIC_HOST is what senders are told to use.
    DICOM_HOST = _env("DICOM_HOST", "127.0.0.1")
    DICOM_PORT = int(_env("DICOM_PORT", "11112"))
    DICOM_PUBLIC_HOST = _env("DICOM_PUBLIC_HOST")
    DICOM_SCP_ENABLED = _env("DICOM_SCP_ENABLED", "1") == "1"
    # Decoded-size bounds, checked from the headers before anything is decoded: pixels of one
    # frame or photo (64 MP: beyond mammography and scanned film), and bytes of a whole instance.
    MAX_FRAME_PIXELS = int(_env("MAX_FRAME_PIXELS", "64000000"))
    MAX_DECODED_MB = int(_env("MAX_DECODED_MB", "2048"))
    # Worker processes that prepare uploaded DICOM files (parse, validate, de-identify) beside
    # the server's own, one pool per server process; 0 prepares them in the request thread.
    # Default: one per core, at most 4, none on a single core (see docs/BENCHMARKS.md).
    INGEST_WORKERS = int(_env("INGEST_WORKERS", str(min(4, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0)))
    # Threads per server process that write uploaded files to the object store, shared by all
    # uploads, the oldest request's files first (app.storage.puts).
    INGEST_PUT_THREADS = int(_env("INGEST_PUT_THREADS", "4"))

    # Email for notifications: off unless MAIL_SERVER is set.
    MAIL_SERVER = _env("MAIL_SERVER")
    MAIL_PORT = int(_env("MAIL_PORT", "25"))
    MAIL_USERNAME = _env("MAIL_USERNAME")
    MAIL_PASSWORD = _env("MAIL_PASSWORD")
    MAIL_USE_TLS = _env("MAIL_USE_TLS", "0") == "1"
    MAIL_SENDER = _env("MAIL_SENDER", "huizhen@localhost")
    PUBLIC_URL = _env("PUBLIC_URL", "http://127.0.0.1:5000")
    # Origins (scheme://host[:port], comma-separated) whose pages may open the Socket.IO
    # connection besides the page's own and PUBLIC_URL's: e.g. the public name behind a proxy.
    ALLOWED_ORIGINS = [o.strip() for o in (_env("ALLOWED_ORIGINS") or "").split(",") if o.strip()]
    # The OHIF Viewer's build is fetched once (`flask --app run ohif-fetch`, part of `make run`) into
    # this folder, shared by every checkout of the machine's user.
    OHIF_CACHE = _env("OHIF_CACHE", str(Path.home() / ".cache" / "huizhen"))

    API_TOKEN_TTL_HOURS = int(_env("API_TOKEN_TTL_HOURS", str(24 * 7)))
    # Seconds a valid token's lookup is kept per process: the bound on honouring a revocation made
    # by another process (one made through the same process takes effect at once). 0: no cache.
    API_TOKEN_CACHE_SECONDS = float(_env("API_TOKEN_CACHE_SECONDS", "5"))
    LOGIN_RATE_LIMIT = _env("LOGIN_RATE_LIMIT", "10 per minute")
    # Per account as well as per address, so a botnet cannot try one account from many addresses.
    LOGIN_ACCOUNT_RATE_LIMIT = _env("LOGIN_ACCOUNT_RATE_LIMIT", "30 per 10 minutes")
    # Strict-Transport-Security max-age; 0 = not sent (plain-HTTP development). Production: a year.
    HSTS_SECONDS = int(_env("HSTS_SECONDS", "0"))
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True

    # Argon2id cost (argon2-cffi defaults); tests lower it to keep factories fast.
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 65536

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env("SESSION_COOKIE_SECURE", "0") == "1"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # How long a browser login lasts at most (its remember-me cookie, and the server's record of it,
    # which a copied cookie cannot outlive); Flask-Login's own default was a year.
    LOGIN_SESSION_DAYS = int(_env("LOGIN_SESSION_DAYS", "30"))

    @property
    def REMEMBER_COOKIE_DURATION(self) -> timedelta:  # noqa: N802 - Flask-Login reads upper-case config keys
        return timedelta(days=self.LOGIN_SESSION_DAYS)
    # Flask-WTF's automatic check is off: app.accounts.auth checks CSRF for every
    # state-changing request that is authenticated by the session rather than a bearer token.
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = None

    @property
    def MAX_CONTENT_LENGTH(self) -> int:  # noqa: N802 - Flask reads upper-case config keys
        return int(self.MAX_UPLOAD_MB) * 1024 * 1024


class TestingConfig(Config):
    """Settings for the test suite: database from DATABASE_URL when set, cheap password hashing."""

    TESTING = True
    SECRET_KEY = "test-secret-key"  # noqa: S105 - fixed key for the test suite only
    # The suite runs on DATABASE_URL when it is set (CI runs it on PostgreSQL too);
    # otherwise tests/conftest.py gives each run its own SQLite file.
    SQLALCHEMY_DATABASE_URI = _database_url(_env("DATABASE_URL")) if _env("DATABASE_URL") else None
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
    WTF_CSRF_ENABLED = True
    # Uploads are prepared in the request thread; tests/imaging/test_ingest_workers.py turns the pool on.
    INGEST_WORKERS = 0


class ProductionConfig(Config):
    """Settings for deployment: secure cookies, and a real secret key is required."""

    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    HSTS_SECONDS = int(_env("HSTS_SECONDS", str(365 * 24 * 3600)))

    def __init__(self) -> None:
        # A generated key would sit in instance/ on one server and differ between processes.
        if not self.SECRET_KEY:
            raise RuntimeError("HUIZHEN_ENV=production requires SECRET_KEY: set it in the environment "
                               "to a long random string shared by every server process")


def config_for_env(name: str | None = None) -> type[Config]:
    """Return the config class HUIZHEN_ENV names: ProductionConfig for "production", else Config."""
    name = _env("HUIZHEN_ENV", "") if name is None else name
    return ProductionConfig if name.strip().lower() == "production" else Config
