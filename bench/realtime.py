"""Realtime benchmark: fan-out latency in one room of 50 WebSocket clients.

In one run, the same load against:
  * bare   : a python-socketio server that only relays (no auth, no database) — the baseline;
  * app    : Huizhen (python run.py) on PostgreSQL: each message authorised, persisted, then sent;
  * app x2 : two Huizhen processes behind Redis, clients split between them.
One client sends --messages messages at --rate per second; latency is send → received by every
member. Prints p50/p99 and delivered messages/s for each, and the ratios to the baseline.
Targets: app p99 < 50 ms and within 2x of bare; app x2 within 3x of bare. Under the results, the
latency of a PostgreSQL commit sampled during each phase (the disk's fsync, which bounds the app's tail).

    python bench/realtime.py [--clients 50] [--messages 200] [--rate 20] [--pg postgresql+psycopg://postgres@127.0.0.1/test]
                             [--server run.py|gunicorn]
"""

import argparse
import multiprocessing
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import requests
import socketio
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import PY, ROOT, Proc, free_port, new_case, pct, prepare_app, serve_app, token, wait_http  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"


class Member:
    def __init__(self, url: str, tok: str | None, case_id: int, received: dict, lock):
        self.sio = socketio.Client(reconnection=False)
        self.case_id = case_id

        def on_message(data):
            now = time.perf_counter()
            with lock:
                received.setdefault(data["client_id"], []).append(now)

        self.sio.on("message", on_message, namespace="/consult")
        self.sio.connect(url, namespaces=["/consult"], auth={"token": tok} if tok else None,
                         transports=["websocket"], wait_timeout=20)
        ack = self.sio.call("join", {"case_id": case_id, "since": 0}, namespace="/consult", timeout=20)
        assert ack["ok"], ack


def run_load(urls: list[str], tokens: list[str | None], case_id: int, clients: int, messages: int, rate: float):
    received: dict[str, list[float]] = {}
    lock = threading.Lock()
    members = [Member(urls[i % len(urls)], tokens[i % len(tokens)], case_id, received, lock) for i in range(clients)]
    time.sleep(1.0)
    sender = members[0]
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for n in range(messages):
        target = start + n * interval
        while (delay := target - time.perf_counter()) > 0:
            time.sleep(delay)
        cid = uuid.uuid4().hex
        sent[cid] = time.perf_counter()
        sender.sio.emit("message", {"case_id": case_id, "body": f"负载测试 {n}", "client_id": cid},
                        namespace="/consult")
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        with lock:
            if all(len(received.get(c, [])) >= clients for c in sent):
                break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    # websocket-client can wait forever for a close frame; disconnect in parallel, bounded.
    closers = [threading.Thread(target=m.sio.disconnect, daemon=True) for m in members]
    for c in closers:
        c.start()
    for c in closers:
        c.join(5)
    latencies, lost = [], 0
    for cid, t0 in sent.items():
        times = received.get(cid, [])
        if len(times) < clients:
            lost += 1
            continue
        latencies.append((max(times) - t0) * 1000)
    return {"p50": statistics.median(latencies), "p99": pct(latencies, 99), "max": max(latencies),
            "rate": len(latencies) / elapsed, "lost": lost}


def run_load_isolated(*args) -> dict:
    """run_load in a fresh process: clients of an earlier phase (and any thread they leave behind)
    cannot take CPU from the next one's, and every phase starts from the same state."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(run_load, args)


class CommitProbe:
    """Times a one-row INSERT + COMMIT on the benchmark's database every 100 ms during a phase.

    Every app message needs its own durable commit before it is broadcast, so when a phase has
    a slow tail this tells whether the disk's fsync had one at the same time (docs/BENCHMARKS.md).
    """

    def __init__(self, db_url: str, every: float = 0.1):
        self.engine = sa.create_engine(db_url)
        with self.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_commit_probe (at double precision)"))
        self.every, self.times = every, []
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> "CommitProbe":
        self.times, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        with self.engine.connect() as conn:
            while not self._stop.wait(self.every):
                t0 = time.perf_counter()
                conn.execute(sa.text("INSERT INTO bench_commit_probe VALUES (:t)"), {"t": t0})
                conn.commit()
                self.times.append((time.perf_counter() - t0) * 1000)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(10)
        t = self.times
        return {"p50": statistics.median(t), "p99": pct(t, 99), "max": max(t), "n": len(t)}


def prepare_database(pg: str) -> tuple[str, callable]:
    schema = f"hz_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{schema}"

    def drop():
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    return url, drop


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--server", choices=["run.py", "gunicorn"], default="run.py",
                    help="what serves the app phases: python run.py, or the production server (gunicorn)")
    args = ap.parse_args()
    results, commits = {}, {}
    db_url, drop = prepare_database(args.pg)
    probe = CommitProbe(db_url)

    def phase(name, urls, tokens, case_id):
        probe.start()
        try:
            results[name] = run_load_isolated(urls, tokens, case_id, args.clients, args.messages, args.rate)
        finally:
            commits[name] = probe.stop()

    port = free_port()
    bare = Proc([PY, str(ROOT / "bench" / "_echo_server.py"), str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling")
        phase("bare", [f"http://127.0.0.1:{port}"], [None], 1)
    finally:
        bare.stop()

    tag = uuid.uuid4().hex[:8]
    env = {"DATABASE_URL": db_url, "SECRET_KEY": "bench", "LOGIN_RATE_LIMIT": "1000 per minute",
           "CHAT_RATE_LIMIT": "100000"}
    try:
        prepare_app(env)  # once: the three app processes share the database
        app, url = serve_app(env, args.server)
        try:
            gp, gyn = token(url, "gp@demo.huizhen"), token(url, "gyn@demo.huizhen")
            h = {"Authorization": f"Bearer {gp}"}
            case_id = new_case(url, h)
            me = requests.get(f"{url}/api/me", headers={"Authorization": f"Bearer {gyn}"}, timeout=10).json()
            requests.post(f"{url}/api/cases/{case_id}/share", json={"specialist_id": me["id"]}, headers=h, timeout=10)
            requests.post(f"{url}/api/cases/{case_id}/accept", headers={"Authorization": f"Bearer {gyn}"}, timeout=10)
            phase("app", [url], [gp, gyn], case_id)
        finally:
            app.stop()
        redis_env = {**env, "SOCKETIO_MESSAGE_QUEUE": REDIS, "SOCKETIO_CHANNEL": f"hz-bench-{tag}",
                     "REDIS_KEY_PREFIX": f"hz-bench-{tag}:"}
        a, url_a = serve_app(redis_env, args.server)
        b, url_b = serve_app(redis_env, args.server)
        try:
            phase("app x2 (redis)", [url_a, url_b], [gp, gyn], case_id)
        finally:
            a.stop()
            b.stop()
            import redis

            r = redis.Redis.from_url(REDIS)
            keys = list(r.scan_iter(match=f"hz-bench-{tag}:*"))
            if keys:
                r.delete(*keys)
    finally:
        probe.engine.dispose()
        drop()

    print(f"{args.clients} clients in one room, {args.messages} messages at {args.rate:g}/s, WebSocket, "
          f"app served by {args.server}")
    base = results["bare"]
    for name, r in results.items():
        ratio = "" if name == "bare" else f"   p99 vs bare: {r['p99'] / base['p99']:.2f}x"
        print(f"{name:15s} p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms  "
              f"{r['rate']:5.1f} msg/s delivered to all  lost {r['lost']}{ratio}")
    print("PostgreSQL commit of a one-row insert, timed every 100 ms during each phase (the disk's fsync):")
    for name, c in commits.items():
        print(f"{name:15s} p50 {c['p50']:6.1f} ms  p99 {c['p99']:6.1f} ms  max {c['max']:6.1f} ms  (n={c['n']})")


if __name__ == "__main__":
    main()
