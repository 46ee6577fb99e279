"""Fixtures for the fault tests: ``python run.py`` processes that a test kills with SIGKILL."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from tests.support.live import ProcessServer


class Killable:
    """Start, SIGKILL and restart ``python run.py`` on one environment (the same database and store)."""

    def __init__(self, env: dict, log_dir):
        self.env, self.log_dir = env, log_dir
        self.server: ProcessServer | None = None

    def start(self) -> ProcessServer:
        self.server = ProcessServer(self.env, self.log_dir).wait()
        return self.server

    def kill(self) -> None:
        """SIGKILL the server's whole process group: no clean-up code of ours runs."""
        os.killpg(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait(10)
        self.server.log.close()
        self.server = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def log_text(self) -> str:
        """Return what the server (the running one, or the last) wrote to its log."""
        return "".join(p.read_text() for p in Path(self.log_dir).glob("server-*.log"))


@pytest.fixture
def killable(database_url, tmp_path):
    """Return a factory of killable servers on the test database; they are stopped at the end."""
    made = []

    def make(**env) -> Killable:
        # Files are prepared in the request thread (no worker pool to start: the machine is small).
        k = Killable({"DATABASE_URL": database_url, "SECRET_KEY": "fault-test", "INGEST_WORKERS": "0", **env},
                     tmp_path)
        made.append(k)
        return k

    yield make
    for k in made:
        k.stop()


def _free_port() -> int:
    from tests.conftest import free_port

    return free_port()


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temp folder, so that restarting it disturbs nobody."""

    def __init__(self, bindir: Path, folder: Path):
        self.bindir, self.data, self.port = bindir, folder / "data", _free_port()
        self.socket_dir = folder
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)  # noqa: S603, S607

    def init(self) -> "PrivatePostgres":
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "30",
                          "-l", str(self.socket_dir / "pg.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture(scope="module")
def private_postgres():
    """Yield a running private PostgreSQL (skipped where initdb or the postgres user is missing)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins or not shutil.which("runuser") or os.geteuid() != 0:
        pytest.skip("needs PostgreSQL's initdb and root to run it as the postgres user")
    folder = Path(tempfile.mkdtemp(prefix="hz-pg-"))
    shutil.chown(folder, "postgres")
    pg = PrivatePostgres(bins[-1].parent, folder)
    try:
        pg.init()
    except (subprocess.CalledProcessError, LookupError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed here: {exc}")
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own on a free port, without persistence."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_redis():
    """Yield a running private redis-server (skipped where redis-server is missing)."""
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    r = PrivateRedis()
    r.start()
    yield r
    r.stop()
