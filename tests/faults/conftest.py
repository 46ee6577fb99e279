"""Fixtures for the fault tests: ``python run.py`` processes that a test kills with SIGKILL."""

import os
import signal

import pytest

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
