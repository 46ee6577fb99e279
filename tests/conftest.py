"""Shared fixtures: an app per test on a clean database, factories, and API clients.

The database is the one in DATABASE_URL (PostgreSQL in CI's second pass) or a SQLite file
made for this run. On PostgreSQL the run gets its own schema, dropped at the end, so the
shared ``test`` database is left as it was found. The schema is built once per run by the
real Alembic migrations; each test then starts from empty tables.
"""

import os
import uuid
from datetime import timedelta
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.accounts import service as accounts
from app.extensions import db, limiter
from config import TestingConfig

PASSWORD = "correct-horse-battery"  # noqa: S105 - test accounts only


def _share_url_builders() -> None:
    """Compile each URL rule's builder once per run instead of once per app (most tests make an app).

    werkzeug generates and compiles Python source for every rule of every new app (about 470
    rules, two builders each): three quarters of create_app's time. The generated function
    depends only on the rule's text, its parsed parts and its defaults, and takes the rule as
    its first argument, so one compiled function serves the same rule in every app of the run.
    """
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    cache = {}

    def shared(self, append_unknown=True):
        defaults = self.defaults or {}
        key = (append_unknown, self.rule, tuple(self._trace),
               tuple((k, repr(v), type(self._converters.get(k))) for k, v in defaults.items()))
        if key not in cache:
            cache[key] = compile_builder(self, append_unknown)
        return cache[key]

    Rule._compile_builder = shared


_share_url_builders()


def _no_fsync(dbapi_connection, _record) -> None:
    """The test database need not survive a power cut: SQLite's commits skip fsync (a fifth of a
    SQLite test's time on a busy disk). Journal and locking are unchanged, and a killed process
    loses nothing, as the writes are already with the OS."""
    dbapi_connection.execute("PRAGMA synchronous = OFF")


def _share_engines() -> None:
    """Give every app of the run on one database the same SQLAlchemy engine.

    An engine keeps the compiled form of each statement it has run; a new engine per test
    compiled every query again (a fifth of the suite's CPU time). Each app still gets its own
    session, and the app fixture disposes the engine's pooled connections after every test.
    In-memory SQLite keeps its own engine: there the engine is the database.
    """
    from flask_sqlalchemy import SQLAlchemy

    make_engine = SQLAlchemy._make_engine
    engines = {}

    def shared(self, bind_key, options, app):
        url = sa.engine.make_url(options["url"])
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return make_engine(self, bind_key, options, app)
        others = sorted((k, v) for k, v in options.items() if k != "url")
        key = (url.render_as_string(hide_password=False), repr(others))
        if key not in engines:
            engines[key] = make_engine(self, bind_key, options, app)
            if url.get_backend_name() == "sqlite":
                sa.event.listen(engines[key], "connect", _no_fsync)
        return engines[key]

    SQLAlchemy._make_engine = shared


_share_engines()

# `make test` runs the suite twice, on SQLite and then on PostgreSQL (HZ_SPLIT_PASSES=1). Tests whose
# subject does not depend on the database engine (browsers, crash and restart faults, the hostile
# file corpus, Orthanc, configuration read in fresh interpreters, response headers) run in the
# SQLite pass only; the API fuzzer runs in the PostgreSQL pass only, where strict types and
# lengths turn bad input into server errors. Run alone, each pass runs everything.
ENGINE_AGNOSTIC = ("tests/e2e/", "tests/faults/", "tests/imaging/test_hostile", "tests/dicomnet/test_orthanc.py",
                   "tests/core/test_config.py", "tests/core/test_security_headers.py")
POSTGRES_PASS = ("tests/fuzz/",)


def pytest_collection_modifyitems(config, items):
    """With HZ_SPLIT_PASSES=1, leave out what the other pass of ``make test`` runs."""
    if os.environ.get("HZ_SPLIT_PASSES") != "1":
        return
    url = TestingConfig.SQLALCHEMY_DATABASE_URI or ""
    elsewhere = ENGINE_AGNOSTIC if url.startswith("postgresql") else POSTGRES_PASS
    keep, drop = [], []
    for item in items:
        path = os.path.relpath(str(item.path), config.rootpath)
        (drop if path.startswith(elsewhere) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep

# Shared worlds (a doctor with a draft case, a case in progress, a consortium) live in tests/support.
pytest_plugins = ["tests.support.worlds", "tests.support.consortium"]


def _with_search_path(url: str, schema: str, *settings: str) -> str:
    sep = "&" if "?" in url else "?"
    options = " ".join(f"-c{s}" for s in (f"search_path={schema}", *settings))
    return f"{url}{sep}options={quote(options)}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """Yield a database URL with the migrated schema, private to this test run."""
    base = TestingConfig.SQLALCHEMY_DATABASE_URI
    if base is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'huizhen-test.db'}"
        _migrate(url, tmp_path_factory)
        yield url
        return
    schema = f"hz_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # Commits do not wait for the shared server's WAL flush (the same durability bargain as
        # SQLite's synchronous=OFF below): a crash of the test server loses nothing the tests need.
        url = _with_search_path(base, schema, "synchronous_commit=off")
        _migrate(url, tmp_path_factory)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _migrate(url: str, tmp_path_factory) -> None:
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url,
                     INSTANCE_PATH=str(tmp_path_factory.mktemp("instance")))
    with app.app_context():
        upgrade()
        db.engine.dispose()


def _empty_tables() -> None:
    """Empty every table between tests; the audit log's append-only triggers are respected.

    Both engines delete row by row with the audit log's delete trigger out of the way: on
    PostgreSQL it is disabled within the transaction; on SQLite it is dropped and put back
    exactly as the migration created it.
    """
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # DELETE, not TRUNCATE: TRUNCATE gives each of the ~36 tables a new file, which costs
            # hundreds of ms per call on a busy server, twice per test. The trigger is switched off
            # inside this transaction only, and the sequences restart as RESTART IDENTITY did.
            conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change"))
            for table in tables:
                conn.execute(table.delete())
            conn.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_change"))
            sequences = conn.execute(sa.text("SELECT sequence_name FROM information_schema.sequences "
                                             "WHERE sequence_schema = current_schema()")).scalars().all()
            if sequences:
                conn.execute(sa.text("SELECT " + ", ".join(f"setval('\"{s}\"', 1, false)" for s in sequences)))
            return
        trigger = conn.execute(sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_events_no_delete'")).scalar()
        if trigger:
            conn.execute(sa.text("DROP TRIGGER audit_events_no_delete"))
        for table in tables:
            conn.execute(table.delete())
        if trigger:
            conn.execute(sa.text(trigger))


@pytest.fixture
def app_overrides():
    """Config overrides for the app fixture; a test module overrides this fixture to change them."""
    return {}


def app_on_empty_tables(database_url: str, folder, **overrides):
    """Yield an app on empty tables with its object store and instance folder under ``folder``."""
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=database_url, UPLOAD_FOLDER=str(folder / "uploads"),
                     INSTANCE_PATH=str(folder / "instance"), **overrides)
    with app.app_context():
        _empty_tables()
        limiter.reset()
    yield app
    with app.app_context():
        db.session.remove()
        _empty_tables()
        db.engine.dispose()


@pytest.fixture
def app(database_url, tmp_path, app_overrides):
    """Yield an app on empty tables, with its object store in a temp folder."""
    yield from app_on_empty_tables(database_url, tmp_path, **app_overrides)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_institution(app):
    """Return a factory of institutions: make_institution(level="county")."""
    counter = iter(range(1, 10_000))

    def make(*, name: str | None = None, level: str = "tertiary", region: str = "湖南省 长沙市"):
        with app.app_context():
            inst = accounts.get_or_create_institution(
                name=name or f"测试医院{next(counter)}", level=level, region=region)
            db.session.commit()
            return inst.id

    return make


@pytest.fixture
def make_user(app, make_institution):
    """Return a factory of users: make_user(specialty="radiology") -> user id."""
    counter = iter(range(1, 10_000))

    def make(*, specialty: str = "general_practice", name: str | None = None, email: str | None = None,
             title: str = "主治医师", level: str = "tertiary", institution_id: int | None = None,
             role: str = "doctor", password: str = PASSWORD, active: bool = True) -> int:
        n = next(counter)
        with app.app_context():
            inst_id = institution_id or make_institution(level=level)
            from app.accounts.models import Institution
            user = accounts.create_user(
                email=email or f"doctor{n}@test.huizhen", password=password,
                name=name or f"医生{n}", specialty=specialty, title=title,
                institution=db.session.get(Institution, inst_id), role=role)
            user.active = active
            db.session.commit()
            return user.id

    return make


class ApiClient:
    """The Flask test client with a bearer token on every request."""

    def __init__(self, client, token: str):
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, **kwargs):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return getattr(self.client, method)(path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self._call("get", path, **kw)

    def post(self, path, **kw):
        return self._call("post", path, **kw)

    def put(self, path, **kw):
        return self._call("put", path, **kw)

    def patch(self, path, **kw):
        return self._call("patch", path, **kw)

    def delete(self, path, **kw):
        return self._call("delete", path, **kw)


@pytest.fixture
def token_for(app):
    """Return a function issuing an API token for a user id (optionally already expired)."""

    def issue(user_id: int, *, ttl: timedelta | None = None) -> str:
        from app.accounts.models import User
        with app.app_context():
            clear, _ = accounts.issue_token(user=db.session.get(User, user_id), ttl=ttl)
            db.session.commit()
            return clear

    return issue


@pytest.fixture
def api_as(client, token_for):
    """Return a function giving an API client authenticated as a user id."""
    return lambda user_id: ApiClient(client, token_for(user_id))


@pytest.fixture
def make_case(api_as):
    """Return a factory of draft cases created through the API: make_case(owner_id) -> case id."""

    def make(owner_id: int, **fields) -> int:
        body = {"title": "盆腔包块待查", "clinical_question": "请会诊：良性还是恶性？", **fields}
        r = api_as(owner_id).post("/api/cases", json=body)
        assert r.status_code == 201, r.json
        return r.json["id"]

    return make


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
