"""Live servers for tests: the app in a thread or in its own process, and Socket.IO clients."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests
import socketio
from werkzeug.serving import make_server

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


class ThreadServer:
    """The app served on 127.0.0.1:<free port> by werkzeug's threaded server, in this process."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        # WebSocket handler threads end when their clients go; do not wait for them on close.
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "ThreadServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> "ThreadServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ProcessServer:
    """``python run.py`` in its own process, with the given environment."""

    command = [sys.executable, "run.py"]

    def __init__(self, env: dict, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_dir / f"server-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        # The DICOM listener stays off unless a test asks for it: parallel servers would all
        # reach for the default port 11112.
        full = {**os.environ, "DICOM_SCP_ENABLED": "0", **env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        # Its own process group, so that stop() reaches a server's worker processes too.
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=full, start_new_session=True,  # noqa: S603
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 30) -> "ProcessServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                requests.get(self.url + "/login", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.log.close()


class ProductionServer(ProcessServer):
    """The production server (gunicorn with gunicorn.conf.py, as ``make serve-production`` runs it)."""

    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]

    def __init__(self, env: dict, log_dir: Path):
        super().__init__({"HUIZHEN_ENV": "production", **env}, log_dir)


class RoomClient:
    """A python-socketio client on /consult that records every event it receives."""

    def __init__(self, url: str, token: str | None, transports=("websocket",)):
        self.sio = socketio.Client(reconnection=False)
        self.url, self.token, self.transports = url, token, list(transports)
        self.events: list[tuple[str, dict]] = []
        self._cond = threading.Condition()
        for name in ("message", "presence", "viewer", "typing", "presenter", "annotation", "annotation_deleted",
                     "removed"):
            self.sio.on(name, self._recorder(name), namespace="/consult")

    def _recorder(self, name):
        def record(data):
            with self._cond:
                self.events.append((name, data))
                self._cond.notify_all()
        return record

    def connect(self) -> "RoomClient":
        auth = {"token": self.token} if self.token else None
        self.sio.connect(self.url, namespaces=["/consult"], auth=auth, transports=self.transports,
                         wait_timeout=10)
        return self

    def call(self, event: str, data: dict) -> dict:
        return self.sio.call(event, data, namespace="/consult", timeout=10)

    def of(self, name: str) -> list[dict]:
        with self._cond:
            return [d for n, d in self.events if n == name]

    def wait_for(self, name: str, predicate=lambda d: True, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for n, d in self.events:
                    if n == name and predicate(d):
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name!r} event matching; got {self.events[-10:]}")
                self._cond.wait(left)

    def disconnect(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()

    def abort(self) -> None:
        """Drop the transport without the close handshake (test teardown: no need to wait)."""
        if self.sio.connected:
            ws = getattr(self.sio.eio, "ws", None)
            if ws is not None and ws.sock is not None:
                # Otherwise websocket-client's close() waits up to 3 s for the server's close frame.
                with contextlib.suppress(OSError):
                    ws.sock.shutdown(socket.SHUT_RDWR)
            self.sio.eio.disconnect(abort=True)


def client_id() -> str:
    return uuid.uuid4().hex


def race(server: ThreadServer, requests_by_name: dict) -> dict[object, requests.Response]:
    """Send requests at the same moment, each from its own thread and connection, and return the answers.

    ``requests_by_name`` maps a name to (token, method, path, json body). Each thread warms its
    connection up first (GET /api/me), then all wait at one barrier and fire together.
    """
    barrier = threading.Barrier(len(requests_by_name))
    results: dict[object, requests.Response] = {}

    def send(name) -> None:
        token, method, path, body = requests_by_name[name]
        headers = {"Authorization": f"Bearer {token}"}
        with requests.Session() as http:
            http.get(f"{server.url}/api/me", headers=headers, timeout=10)
            barrier.wait(10)
            results[name] = http.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=30)

    threads = [threading.Thread(target=send, args=(name,)) for name in requests_by_name]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results
