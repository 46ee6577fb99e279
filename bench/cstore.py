"""C-STORE benchmark: storescu sends the same kind of 200-slice CT series into Huizhen and into Orthanc.

Starts the app (``python run.py``, which runs the DICOM listener; local object store, SQLite unless
--database-url) and Orthanc 1.x (Debian ``orthanc``) on free local ports, then alternates rounds:
dcmtk's ``storescu +sd -R`` of a fresh synthetic series (512×512 16-bit, new UIDs each round) to
the case's AE title, and the same to Orthanc. Huizhen validates, de-identifies, indexes and commits
each instance before answering it. Prints the median wall time of each and the ratio (target: < 1.5).

    python bench/cstore.py [--slices 200] [--rounds 3] [--database-url URL]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _servers import free_port, new_case, start_app, token  # noqa: E402
from ingest import synthetic_series  # noqa: E402

from tests.support.orthanc import Orthanc  # noqa: E402


def write_series(folder: Path, n: int) -> int:
    """Write a fresh synthetic series into the folder; return its size in bytes."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    total = 0
    for i, data in enumerate(synthetic_series(n)):
        (folder / f"IM{i:05d}.dcm").write_bytes(data)
        total += len(data)
    return total


def storescu(folder: Path, ae_title: str, port: int) -> float:
    """Send the folder with storescu in one association; return the wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(["storescu", "+sd", "-R", "-aet", "BENCH", "-aec", ae_title, "127.0.0.1", str(port),  # noqa: S603, S607
                    str(folder)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hz-bench-cstore-"))
    dicom_port = free_port()
    env = {"STORAGE_BACKEND": "local", "UPLOAD_FOLDER": str(tmp / "uploads"), "DICOM_PORT": str(dicom_port),
           "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.db'}", "DICOM_SCP_ENABLED": "1"}
    app, url = start_app(env)
    orthanc_dir = tmp / "orthanc"
    orthanc_dir.mkdir()
    orthanc = Orthanc(orthanc_dir).start()
    try:
        headers = {"Authorization": f"Bearer {token(url)}"}
        times = {"huizhen": [], "orthanc": []}
        for round_ in range(args.rounds):
            case_id = new_case(url, headers)
            node = requests.get(f"{url}/api/cases/{case_id}/dicom-node", headers=headers, timeout=10).json()
            mb = write_series(tmp / "series", args.slices) / 1e6
            times["huizhen"].append(storescu(tmp / "series", node["ae_title"], node["port"]))
            items = requests.get(f"{url}/api/cases/{case_id}/instances", headers=headers, timeout=30).json()["items"]
            assert len(items) == args.slices, f"Huizhen stored {len(items)} of {args.slices}"
            write_series(tmp / "series", args.slices)
            times["orthanc"].append(storescu(tmp / "series", orthanc.aet, orthanc.dicom_port))
            print(f"round {round_ + 1}: huizhen {times['huizhen'][-1]:.2f} s  orthanc {times['orthanc'][-1]:.2f} s")
        hz, oc = statistics.median(times["huizhen"]), statistics.median(times["orthanc"])
        print(f"series: {args.slices} slices 512x512 16-bit, {mb:.1f} MB, storescu +sd -R, one association")
        print(f"huizhen  median {hz:.2f} s  {args.slices / hz:6.1f} instances/s  {mb / hz:6.1f} MB/s")
        print(f"orthanc  median {oc:.2f} s  {args.slices / oc:6.1f} instances/s  {mb / oc:6.1f} MB/s")
        print(f"ratio huizhen/orthanc: {hz / oc:.2f} (target < 1.5)")
    finally:
        orthanc.stop()
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
