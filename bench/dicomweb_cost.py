"""What one QIDO search costs the server: CPU per request, Huizhen and Orthanc, over the same series.

The wall-clock figures of ``bench/dicomweb.py`` swing 2–4× with the load of a shared machine;
the CPU time the server process spends per request does much less, so this script measures that:
it serves the app (``python run.py`` and/or gunicorn as ``make serve-production`` runs it) and
Orthanc with its DICOMweb plugin over the same synthetic CT series, sends --requests sequential
QIDO study and series searches (one keep-alive connection, bearer token, permission check and
audit on, after 50 warm-up requests) and reads the servers' user+system CPU time from /proc
before and after (the process and its children, all threads). It also prints the median wall
time per request. --profile DIR also writes a cProfile of every Huizhen request (thread CPU time,
merged per server, warm-ups and both searches: DIR/<server>.prof; see bench/_profiled.py), which
makes the requests slower (its CPU figures are then not comparable) but counts each function call.

    python bench/dicomweb_cost.py [--servers run.py,gunicorn] [--requests 500] [--slices 200]
                                  [--workdir DIR] [--profile DIR] [--no-orthanc]

--workdir keeps the database, uploads and Orthanc storage between runs (made on first use).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import cpu_tree, new_case, prepare_app, serve_app, token, upload_dicom  # noqa: E402
from dicomweb import JSON, load_orthanc, start_orthanc, target  # noqa: E402
from ingest import synthetic_series  # noqa: E402

SEARCHES = ("studies", "series")


def prepare(work: Path, slices: int, orthanc_binary: str | None) -> dict:
    """Make (or reuse) the app's database with one case holding the series, and Orthanc's storage."""
    state_file = work / "state.json"
    if state_file.exists():
        return json.loads(state_file.read_text())
    files = synthetic_series(slices)
    env = app_env(work)
    prepare_app(env)
    app, url = serve_app(env)
    try:
        auth = {"Authorization": f"Bearer {token(url)}"}
        case_id = new_case(url, auth)
        assert upload_dicom(url, case_id, files, auth) == len(files)
    finally:
        app.stop()
    if orthanc_binary:
        orthanc, orthanc_url = start_orthanc(orthanc_binary, work)
        try:
            load_orthanc(orthanc_url, files)
        finally:
            orthanc.stop()
    state = {"case_id": case_id, "slices": slices}
    state_file.write_text(json.dumps(state))
    return state


def app_env(work: Path) -> dict:
    return {"DATABASE_URL": f"sqlite:///{work / 'app.db'}", "STORAGE_BACKEND": "local",
            "UPLOAD_FOLDER": str(work / "uploads"), "SECRET_KEY": "bench"}


def cost(pid: int, root: str, headers: dict, n: int) -> dict[str, dict[str, float]]:
    """Per search: the server's CPU ms per request and the median wall ms, over n requests."""
    study, _, _ = target(root, headers)
    urls = {"studies": f"{root}/studies", "series": f"{root}/studies/{study}/series"}
    out = {}
    with requests.Session() as s:
        for name in SEARCHES:
            for _ in range(50):
                s.get(urls[name], headers=headers, timeout=60).raise_for_status()
            walls = []
            cpu0 = cpu_tree(pid)
            for _ in range(n):
                start = time.perf_counter()
                r = s.get(urls[name], headers=headers, timeout=60)
                r.raise_for_status()
                walls.append((time.perf_counter() - start) * 1000)
            cpu = cpu_tree(pid) - cpu0
            out[name] = {"cpu_ms": cpu * 1000 / n, "wall_ms": statistics.median(walls)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="run.py,gunicorn")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--profile", default=None, help="directory for the cProfile of each server and search")
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--orthanc", default="/usr/sbin/Orthanc")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hz-bench-cost-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        state = prepare(work, args.slices, None if args.no_orthanc else args.orthanc)
        results = {}
        for server in args.servers.split(","):
            profile = None
            if args.profile:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                profile = str(Path(args.profile) / f"{server}.prof")
            app, url = serve_app(app_env(work), server, profile=profile)
            try:
                auth = {"Authorization": f"Bearer {token(url)}", **JSON}
                results[f"huizhen {server}"] = cost(app.p.pid, f"{url}/dicomweb/cases/{state['case_id']}", auth,
                                                    args.requests)
            finally:
                app.stop()
        if not args.no_orthanc:
            orthanc, orthanc_url = start_orthanc(args.orthanc, work)
            try:
                results["orthanc"] = cost(orthanc.p.pid, f"{orthanc_url}/dicom-web", JSON, args.requests)
            finally:
                orthanc.stop()

    print(f"\n{args.requests} sequential requests per search, one keep-alive connection ({state['slices']} slices):")
    print(f"{'server':22} " + " ".join(f"{s + ' cpu ms':>16} {s + ' wall ms':>17}" for s in SEARCHES))
    for name, r in results.items():
        print(f"{name:22} " + " ".join(f"{r[s]['cpu_ms']:16.2f} {r[s]['wall_ms']:17.2f}" for s in SEARCHES))


if __name__ == "__main__":
    main()
