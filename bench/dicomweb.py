"""DICOMweb benchmark: Huizhen's per-case root against Orthanc's DICOMweb plugin, same series, same run.

Starts Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``) with a temporary config and
storage on free 127.0.0.1 ports, and the app (SQLite, local store) on its production server
(gunicorn as ``make serve-production`` runs it; ``--server run.py`` for the embedded default,
Werkzeug's development server), loads the same synthetic 200-slice CT series into both (Orthanc:
POST /instances; Huizhen: the upload API, so de-identified and indexed), then measures,
alternating the servers each round:
  * QIDO study search (GET …/studies) and series search (GET …/studies/{study}/series);
  * series metadata (GET …/series/{series}/metadata, 200 instances);
  * all 200 frames (GET …/instances/{sop}/frames/1, octet-stream) fetched by 2 client threads.
Huizhen runs with its permission check and audit on (bearer token of the case's owner).
Prints the median per measure and the ratio Huizhen/Orthanc (target: at most 1.0), and each
server's CPU time per QIDO search over all rounds (from /proc: user+system of the server process
and its children), which a busy machine disturbs much less than the wall-clock figures.

    python bench/dicomweb.py [--slices 200] [--rounds 5] [--server gunicorn|run.py] [--orthanc /usr/sbin/Orthanc]
                             [--database-url URL]

With a PostgreSQL --database-url the app gets a schema of its own, dropped at the end.
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import Proc, cpu_tree, free_port, new_case, prepare_app, serve_app, token, upload_dicom, wait_http  # noqa: E402
from ingest import synthetic_series  # noqa: E402

PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
JSON = {"Accept": "application/dicom+json"}
FRAMES = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}


def start_orthanc(binary: str, workdir: Path) -> tuple[Proc, str]:
    """Run Orthanc with the DICOMweb plugin on a free local port; no DICOM listener."""
    port = free_port()
    config = {
        "Name": "bench", "StorageDirectory": str(workdir / "storage"), "IndexDirectory": str(workdir / "index"),
        "HttpPort": port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomServerEnabled": False, "Plugins": [PLUGIN], "HttpThreadsCount": 50,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
    }
    path = workdir / "orthanc.json"
    path.write_text(json.dumps(config))
    proc = Proc([binary, str(path)], log=workdir / "orthanc.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/system")
    return proc, url


def load_orthanc(url: str, files: list[bytes]) -> None:
    with requests.Session() as s:
        for data in files:
            s.post(f"{url}/instances", data=data, timeout=60).raise_for_status()


def timed(session, url: str, headers: dict, n: int) -> list[float]:
    """Return the latencies (ms) of n GETs of url."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        r = session.get(url, headers=headers, timeout=120)
        r.raise_for_status()
        _ = r.content
        out.append((time.perf_counter() - start) * 1000)
    return out


def all_frames(root: str, auth: dict, study: str, series: str, sops: list[str], threads: int = 2) -> float:
    """Fetch frame 1 of every instance with `threads` client threads; return seconds."""
    sessions = [requests.Session() for _ in range(threads)]

    def fetch(i: int) -> int:
        s = sessions[i % threads]
        r = s.get(f"{root}/studies/{study}/series/{series}/instances/{sops[i]}/frames/1",
                  headers={**auth, **FRAMES}, timeout=120)
        r.raise_for_status()
        return len(r.content)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        sizes = list(pool.map(fetch, range(len(sops))))
    elapsed = time.perf_counter() - start
    assert all(size > 512 * 512 * 2 for size in sizes)
    for s in sessions:
        s.close()
    return elapsed


def target(root: str, auth: dict) -> tuple[str, str, list[str]]:
    """Find the series and its instances through QIDO."""
    study = requests.get(f"{root}/studies", headers={**auth, **JSON}, timeout=60).json()[0]["0020000D"]["Value"][0]
    series = requests.get(f"{root}/studies/{study}/series", headers={**auth, **JSON},
                          timeout=60).json()[0]["0020000E"]["Value"][0]
    instances = requests.get(f"{root}/studies/{study}/series/{series}/instances", headers={**auth, **JSON},
                             timeout=60).json()
    return study, series, [i["00080018"]["Value"][0] for i in instances]


def measure(root: str, auth: dict, study: str, series: str, sops: list[str], pid: int,
            cpu: dict[str, list[float]]) -> dict[str, float]:
    """Time each measure; add the server's CPU seconds and request count of each QIDO search to ``cpu``."""

    def search(s, url: str, key: str) -> float:
        before = cpu_tree(pid)
        median = statistics.median(timed(s, url, {**auth, **JSON}, 30))
        cpu.setdefault(key, [0.0, 0])
        cpu[key][0] += cpu_tree(pid) - before
        cpu[key][1] += 30
        return median

    with requests.Session() as s:
        return {
            "qido studies (ms)": search(s, f"{root}/studies", "qido studies"),
            "qido series (ms)": search(s, f"{root}/studies/{study}/series", "qido series"),
            "series metadata (ms)": statistics.median(
                timed(s, f"{root}/studies/{study}/series/{series}/metadata", {**auth, **JSON}, 5)),
            f"{len(sops)} frames, 2 threads (s)": all_frames(root, auth, study, series, sops),
        }


@contextmanager
def database(url: str | None, workdir: Path):
    """Yield the app's database URL: a SQLite file, or a fresh schema of a PostgreSQL database."""
    if not url:
        yield f"sqlite:///{workdir / 'app.db'}"
        return
    schema = f"hz_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--orthanc", default=shutil.which("Orthanc") or "/usr/sbin/Orthanc")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--server", choices=("gunicorn", "run.py"), default="gunicorn",
                        help="the app's server: gunicorn (production, default) or run.py (Werkzeug's)")
    args = parser.parse_args()

    files = synthetic_series(args.slices)
    with tempfile.TemporaryDirectory(prefix="hz-bench-dicomweb-") as tmp, \
            database(args.database_url, Path(tmp)) as database_url:
        work = Path(tmp)
        orthanc, orthanc_url = start_orthanc(args.orthanc, work)
        env = {"DATABASE_URL": database_url, "STORAGE_BACKEND": "local", "UPLOAD_FOLDER": str(work / "uploads"),
               "SECRET_KEY": "bench"}
        prepare_app(env)
        app, app_url = serve_app(env, args.server)
        try:
            load_orthanc(orthanc_url, files)
            auth = {"Authorization": f"Bearer {token(app_url)}"}
            case_id = new_case(app_url, auth)
            assert upload_dicom(app_url, case_id, files, auth) == len(files)
            servers = {"huizhen": (f"{app_url}/dicomweb/cases/{case_id}", auth),
                       "orthanc": (f"{orthanc_url}/dicom-web", {})}
            pids = {"huizhen": app.p.pid, "orthanc": orthanc.p.pid}
            targets = {name: target(root, a) for name, (root, a) in servers.items()}
            for name, (root, a) in servers.items():  # warm-up: first reads fill both servers' caches
                measure(root, a, *targets[name], pids[name], {})
            results: dict[str, dict[str, list[float]]] = {name: {} for name in servers}
            cpu: dict[str, dict[str, list]] = {name: {} for name in servers}
            for rnd in range(args.rounds):
                order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                for name in order:
                    root, a = servers[name]
                    for key, value in measure(root, a, *targets[name], pids[name], cpu[name]).items():
                        results[name].setdefault(key, []).append(value)
                print(f"round {rnd + 1}: " + "  ".join(
                    f"{name} " + " ".join(f"{v[-1]:.1f}" for v in results[name].values()) for name in servers))
        finally:
            app.stop()
            orthanc.stop()
    print(f"\nmedian of {args.rounds} rounds ({args.slices}-slice 512x512 CT series; huizhen on {args.server}):")
    print(f"{'measure':32} {'huizhen':>10} {'orthanc':>10} {'ratio':>7}")
    for key in results["huizhen"]:
        h, o = (statistics.median(results[n][key]) for n in ("huizhen", "orthanc"))
        print(f"{key:32} {h:10.1f} {o:10.1f} {h / o:7.2f}")
    for key in cpu["huizhen"]:
        h, o = (cpu[n][key][0] * 1000 / cpu[n][key][1] for n in ("huizhen", "orthanc"))
        print(f"{key + ' CPU/request (ms)':32} {h:10.2f} {o:10.2f} {h / o:7.2f}")


if __name__ == "__main__":
    main()
