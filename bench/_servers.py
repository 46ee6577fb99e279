"""What the benchmarks share: the processes they start (an S3 server, the Huizhen app, on free local
ports), the API calls that set up a case, and the percentile they report."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))
from tests.support.proctree import descendants  # noqa: E402 - the repository's root is on the path only now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


class Proc:
    """A child process that is terminated when the benchmark ends."""

    def __init__(self, args, env=None, log=None):
        self.log = open(log or os.devnull, "w")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},  # noqa: S603
                                  stdout=self.log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        """User+system CPU time the process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


def start_s3() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return proc, url


def start_app(env: dict, server: str = "run.py") -> tuple[Proc, str]:
    """Migrate, seed and serve the app with the given environment (python run.py, or gunicorn)."""
    prepare_app(env)
    return serve_app(env, server)


def prepare_app(env: dict) -> None:
    """Migrate the database and seed the demo accounts (once per database)."""
    for cmd in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run([PY, "-m", "flask", "--app", "run", *cmd], cwd=ROOT, env={**os.environ, **env},  # noqa: S603
                       check=True, capture_output=True)


SERVERS = {
    "run.py": [PY, "run.py"],
    # The production server, as `make serve-production` runs it (gunicorn.conf.py).
    "gunicorn": [PY, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
}


def serve_app(env: dict, server: str = "run.py", profile: str | None = None) -> tuple[Proc, str]:
    """Serve the app (python run.py, or gunicorn) on a free port over an already prepared database.

    ``profile``: run the server under bench/_profiled.py, writing its per-request cProfile there.
    """
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    if server == "gunicorn":
        env = {"HUIZHEN_ENV": "production", "SECRET_KEY": "bench", **env}
    env = {"DICOM_SCP_ENABLED": "0", **env}
    command = SERVERS[server]
    if profile:
        command = [PY, str(ROOT / "bench" / "_profiled.py"), profile, *command[1:]]
    proc = Proc(command, env=env, log=env.get("BENCH_APP_LOG"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/login")
    return proc, url


def new_case(url: str, headers: dict, session=requests) -> int:
    """Create a draft case through the API; return its id."""
    r = session.post(f"{url}/api/cases", json={"title": "bench", "clinical_question": "bench"}, headers=headers,
                     timeout=30)
    r.raise_for_status()
    return r.json()["id"]


def upload_dicom(url: str, case_id: int, files: list[bytes], headers: dict, session=requests, batch: int = 20) -> int:
    """Upload DICOM files through the API in requests of ``batch`` files; return how many were accepted."""
    accepted = 0
    for start in range(0, len(files), batch):
        multipart = [("files", (f"IM{start + j:05d}", data, "application/dicom"))
                     for j, data in enumerate(files[start:start + batch])]
        r = session.post(f"{url}/api/cases/{case_id}/files", files=multipart, headers=headers, timeout=600)
        r.raise_for_status()
        accepted += len(r.json()["accepted"])
    return accepted


def upload_parallel(url: str, case_id: int, files: list[bytes], headers: dict, *, batch: int = 10,
                    threads: int = 2) -> int:
    """Upload files in requests of ``batch`` from ``threads`` client threads; return how many were accepted."""
    from concurrent.futures import ThreadPoolExecutor

    batches = [files[i:i + batch] for i in range(0, len(files), batch)]
    local = threading.local()

    def send(index: int) -> int:
        local.session = getattr(local, "session", None) or requests.Session()
        return upload_dicom(url, case_id, batches[index], headers, local.session, batch=batch)

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(send, range(len(batches))))


def cpu_tree(pid: int) -> float:
    """User+system CPU seconds used so far by a process and its live children (Linux /proc)."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the ingest workers), in KiB (Linux /proc)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def pct(values, p: float) -> float:
    """The p-th percentile (nearest rank) of the values."""
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def token(url: str, email: str = "gp@demo.huizhen") -> str:
    r = requests.post(f"{url}/api/auth/token", json={"email": email, "password": "huizhen-demo"}, timeout=10)
    r.raise_for_status()
    return r.json()["token"]


def cpu_self() -> float:
    """User+system CPU time of this (client) process so far."""
    t = os.times()
    return t.user + t.system
