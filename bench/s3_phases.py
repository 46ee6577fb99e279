"""The S3 half of bench/ingest.py alone, with CPU per process: where an app upload's time goes against raw puts.

Starts moto's S3 server and the app with the S3 store (``python run.py``, SQLite), then runs
alternating phases with the same files and 2 client threads: **raw** (bench/ingest.py's raw put,
the minio client, unchanged) and **app** (``POST /api/cases/{id}/files`` in batches). For each
phase it prints the wall rate and the CPU milliseconds per slice of moto, the app's server
process, its ingest workers and this client (from /proc), and the machine's load average.

    python bench/s3_phases.py [--rounds 4] [--slices 100] [--batch 10] [--local] [--timeline DIR]
                              [--variant NAME:ENV=VALUE,ENV=VALUE ...] [--pin]

``--local`` adds a phase **local**: the same upload to an app with the local store, so that the
S3 store's share of the app's CPU shows beside what any store costs. ``--variant`` adds an app
phase served with extra environment variables (each its own server on the same moto), for A/B
comparisons in the same minutes. Phases run in a different order each round.

``--pin`` (Linux) runs moto alone on the first CPU and the apps and this client on the others, in
every phase: the S3 server then has a core of its own, as it would on another machine, and the
app's side shows what its own CPU allows.

``--timeline DIR`` runs moto and the S3 apps under bench/_timeline.py: per-put and per-connection
latencies and thread CPU, summarised per phase (p50/p90 put latency in the app, moto's
connections in flight, its CPU per connection).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import (  # noqa: E402
    PY,
    Proc,
    cpu_self,
    cpu_tree,
    free_port,
    new_case,
    pct,
    prepare_app,
    start_app,
    token,
    upload_parallel,
    wait_http,
)
from ingest import ACCESS, SECRET, raw_upload, synthetic_series  # noqa: E402
from minio import Minio  # noqa: E402

COMMON = {"SECRET_KEY": "bench", "MAX_UPLOAD_MB": "2048", "LOGIN_RATE_LIMIT": "1000 per minute"}


def start_moto(timeline: Path | None) -> tuple[Proc, str]:
    port = free_port()
    args = ["-H", "127.0.0.1", "-p", str(port)]
    if timeline:
        proc = Proc([PY, "bench/_timeline.py", str(timeline / "moto.log"), "moto", *args])
    else:
        proc = Proc([PY, "-m", "moto.server", *args])
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return proc, url


def start_s3_app(env: dict, log: Path | None) -> tuple[Proc, str]:
    if not log:
        return start_app(env)
    prepare_app(env)
    port = free_port()
    proc = Proc([PY, "bench/_timeline.py", str(log), "app", "run.py"],
                env={"DICOM_SCP_ENABLED": "0", **env, "PORT": str(port), "HOST": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/login")
    return proc, url


def read_log(path: Path, t0: float, t1: float) -> dict[str, list[tuple[float, float, float]]]:
    """Entries of a timeline log that started within [t0, t1] (perf_counter is system-wide on Linux)."""
    found: dict[str, list] = {}
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        kind, start, end, cpu = line.split()[:4]
        if t0 <= float(start) <= t1:
            found.setdefault(kind, []).append((float(start), float(end), float(cpu)))
    return found


def concurrency(spans: list[tuple[float, float, float]], t0: float, t1: float) -> float:
    """Mean number of spans open over [t0, t1]."""
    return sum(min(e, t1) - max(s, t0) for s, e, _ in spans) / (t1 - t0) if t1 > t0 else 0.0


def spans(label: str, found: list[tuple[float, float, float]], t0: float, t1: float) -> str:
    lat = [e - s for s, e, _ in found]
    return (f"{label} {len(found)}: {statistics.median(lat) * 1000:.1f}/{pct(lat, 90) * 1000:.1f} ms p50/p90,"
            f" thread cpu {statistics.median(c for *_, c in found) * 1000:.2f} ms,"
            f" in flight {concurrency(found, t0, t1):.2f}")


def describe(timeline: Path, app_log: Path | None, t0: float, t1: float) -> str:
    parts = []
    moto = read_log(timeline / "moto.log", t0, t1).get("conn", [])
    if moto:
        parts.append(spans("moto conns", moto, t0, t1))
    app = read_log(app_log, t0, t1) if app_log else {}
    if app.get("put"):
        parts.append(spans("app puts", app["put"], t0, t1))
    if app.get("ingest"):
        reqs = app["ingest"]
        parts.append(f"ingest calls {len(reqs)}: {statistics.median(e - s for s, e, _ in reqs) * 1000:.0f} ms p50,"
                     f" in flight {concurrency(reqs, t0, t1):.2f}")
    return "\n      ".join(parts)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    return name, dict(item.split("=", 1) for item in assignments.split(",") if item)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--local", action="store_true", help="also upload to an app with the local store")
    ap.add_argument("--variant", action="append", default=[], type=parse_variant,
                    help="NAME:ENV=VALUE,... another S3 app served with these environment variables")
    ap.add_argument("--timeline", type=Path, default=None)
    ap.add_argument("--pin", action="store_true", help="moto alone on the first CPU, everything else on the others")
    args = ap.parse_args()
    if args.timeline:
        args.timeline.mkdir(parents=True, exist_ok=True)
        for old in args.timeline.glob("*.log"):
            old.unlink()

    files = synthetic_series(args.slices)
    n = len(files)
    tmp = tempfile.TemporaryDirectory()
    cpus = os.sched_getaffinity(0) if args.pin else set()
    if args.pin:
        if len(cpus) < 2:
            sys.exit("--pin needs at least two CPUs")
        os.sched_setaffinity(0, {min(cpus)})  # moto, started now, inherits this thread's CPU...
    s3, s3_url = start_moto(args.timeline)
    if args.pin:
        os.sched_setaffinity(0, cpus - {min(cpus)})  # ...and the apps and the client the others
        print(f"pinned: moto on CPU {min(cpus)}, the apps and the client on {sorted(cpus - {min(cpus)})}")
    apps: dict[str, tuple[Proc, str, dict, Path | None]] = {}
    results: dict[str, list[tuple[float, ...]]] = {"raw": []}
    try:
        for name, extra in [("app", {}), *args.variant]:
            log = args.timeline / f"{name}.log" if args.timeline else None
            proc, url = start_s3_app({
                **COMMON, "STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3_url, "S3_ACCESS_KEY": ACCESS,
                "S3_SECRET_KEY": SECRET, "S3_BUCKET": f"huizhen-{name}", "S3_REGION": "us-east-1",
                "DATABASE_URL": f"sqlite:///{tmp.name}/{name}.db", **extra}, log)
            apps[name] = (proc, url, {"Authorization": f"Bearer {token(url)}"}, log)
            results[name] = []
        if args.local:
            proc, url = start_app({**COMMON, "STORAGE_BACKEND": "local", "UPLOAD_FOLDER": f"{tmp.name}/uploads",
                                   "DATABASE_URL": f"sqlite:///{tmp.name}/local.db"})
            apps["local"] = (proc, url, {"Authorization": f"Bearer {token(url)}"}, None)
            results["local"] = []
        for _, url, headers, _ in apps.values():  # warm-up: ingest workers, connections, buckets
            upload_parallel(url, new_case(url, headers), files[:4], headers, batch=2)
        raw = Minio(s3_url.split("//")[1], access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")
        raw.make_bucket("raw-baseline")
        raw_upload(raw, files[:4], "warm")

        def phase(name: str, r: int) -> None:
            server, url, headers, log = apps.get(name, apps["app"])
            case = new_case(url, headers) if name != "raw" else None

            def cpu() -> tuple[float, ...]:
                return Proc.cpu_seconds(s3), Proc.cpu_seconds(server), cpu_tree(server.p.pid), cpu_self()

            before = cpu()
            t0 = time.perf_counter()
            if name == "raw":
                raw_upload(raw, files, f"round{r}")
            else:
                assert upload_parallel(url, case, files, headers, batch=args.batch) == n
            t1 = time.perf_counter()
            moto, own, tree, client = (b - a for a, b in zip(before, cpu(), strict=True))
            if name == "raw":
                own = tree = 0.0  # the app idles meanwhile
            results[name].append((t1 - t0, moto, own, tree - own, client))
            per = 1000 / n
            print(f"  {name:>8}: {n / (t1 - t0):6.1f}/s   cpu ms/slice moto {moto * per:4.1f}  server {own * per:4.1f}"
                  f"  workers {(tree - own) * per:4.1f}  client {client * per:4.1f}  total"
                  f" {(moto + tree + client) * per:5.1f}   load {os.getloadavg()[0]:.1f}", flush=True)
            if args.timeline:
                time.sleep(0.3)  # let the last lines be written
                if summary := describe(args.timeline, log if name != "raw" else None, t0, t1):
                    print("      " + summary, flush=True)

        order = list(results)
        for r in range(args.rounds):
            print(f"round {r + 1}")
            for name in order[r % len(order):] + order[:r % len(order)]:
                phase(name, r)
    finally:
        for proc, *_ in apps.values():
            proc.stop()
        s3.stop()
        tmp.cleanup()

    per = 1000 / n
    med = {k: [statistics.median(x[i] for x in v) for i in range(5)] for k, v in results.items() if v}
    for k, (wall, moto, own, workers, client) in med.items():
        print(f"median {k:>8}: {n / wall:6.1f}/s  cpu ms/slice moto {moto * per:4.1f} server {own * per:4.1f}"
              f" workers {workers * per:4.1f} client {client * per:4.1f}  total"
              f" {(moto + own + workers + client) * per:5.1f}   ratio to raw {med['raw'][0] / wall:.2f}")


if __name__ == "__main__":
    main()
