"""Serving benchmark: HTTP request rate of the app under python run.py and under the production server.

Each server in turn, on the same SQLite database: --threads client threads (keep-alive sessions)
send ``GET /api/cases/{id}`` (authenticated, access-checked, audited, a few queries) for
--seconds; prints requests/s and latency p50/p99. Servers: ``python run.py`` (Werkzeug's threaded
development server), gunicorn with one threaded worker (the default of ``make serve-production``)
and gunicorn with WORKERS=2 (both cores; needs the Redis message queue for Socket.IO).

    python bench/serving.py [--threads 8] [--seconds 10]
"""

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import new_case, pct, prepare_app, serve_app, token  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"


def load(url: str, headers: dict, case_id: int, threads: int, seconds: float) -> dict:
    """Send requests from ``threads`` threads for ``seconds``; return rate and latency percentiles."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        session = requests.Session()
        mine = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            r = session.get(f"{url}/api/cases/{case_id}", headers=headers, timeout=30)
            mine.append((time.perf_counter() - start) * 1000)
            if r.status_code != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"rate": len(latencies) / seconds, "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "errors": errors[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{tmp}/bench.db", "SECRET_KEY": "bench", "UPLOAD_FOLDER": f"{tmp}/up",
               "LOGIN_RATE_LIMIT": "1000 per minute", "SOCKETIO_MESSAGE_QUEUE": REDIS,
               "SOCKETIO_CHANNEL": f"hz-bench-{tag}", "REDIS_KEY_PREFIX": f"hz-bench-{tag}:"}
        prepare_app(env)
        results = {}
        for name, server, extra in (("run.py", "run.py", {}), ("gunicorn 1x100", "gunicorn", {}),
                                    ("gunicorn 2x100", "gunicorn", {"WORKERS": "2"})):
            proc, url = serve_app({**env, **extra}, server)
            try:
                headers = {"Authorization": f"Bearer {token(url)}"}
                case_id = new_case(url, headers)
                load(url, headers, case_id, args.threads, 2)  # warm up
                results[name] = load(url, headers, case_id, args.threads, args.seconds)
            finally:
                proc.stop()
    print(f"GET /api/cases/{{id}}, {args.threads} client threads, {args.seconds:g} s each, SQLite")
    for name, r in results.items():
        print(f"{name:15s} {r['rate']:7.1f} req/s   p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  "
              f"errors {r['errors']}")


if __name__ == "__main__":
    main()
