"""Ingest benchmark: a synthetic CT series through the HTTP API into a real S3 server.

Starts moto's S3 server and the app (S3 backend) as separate local processes, then in the
same run measures:
  * raw: the minio client putting the same DICOM bytes to the same server, one after another;
  * app: the same files uploaded through POST /api/cases/{id}/files (validated, de-identified,
    indexed, stored), in requests of --batch files;
  * render: p50/p95 of GET .../rendered for a 512×512 frame, cold (first request of each
    instance) and cached (the same requests again).
Prints MB/s, instances/s and the ratio app/raw (target: at least 0.70).

    python bench/ingest.py [--slices 200] [--batch 20] [--rounds 5] [--database-url URL]
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import requests
from minio import Minio
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import cpu_self, new_case, pct, start_app, start_s3, token, upload_dicom  # noqa: E402

ACCESS, SECRET = "bench", "bench-secret"


def synthetic_series(n: int, size: int = 512) -> list[bytes]:
    """n slices of a 16-bit CT volume (a noisy sphere phantom), each a distinct instance."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    rng = np.random.default_rng(42)
    yy, xx = np.mgrid[0:size, 0:size]
    study = pydicom.uid.generate_uid()
    series = pydicom.uid.generate_uid()
    files = []
    for i in range(n):
        z = (i - n / 2) / (n / 2)
        radius = max(0.0, 1 - z * z) ** 0.5 * size * 0.4
        body = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) <= radius ** 2
        pixels = np.where(body, 1040, 24) + rng.integers(-20, 20, (size, size))
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelData = pixels.astype(np.int16).tobytes()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    ap.add_argument("--render-samples", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5, help="alternating raw/app rounds; the median is reported")
    args = ap.parse_args()

    files = synthetic_series(args.slices)
    total = sum(len(f) for f in files)
    mb = total / 1e6
    print(f"series: {len(files)} slices 512x512 16-bit, {mb:.1f} MB")

    s3, s3_url = start_s3()
    tmp = tempfile.TemporaryDirectory()
    env = {"STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3_url, "S3_ACCESS_KEY": ACCESS, "S3_SECRET_KEY": SECRET,
           "S3_BUCKET": "huizhen-bench", "S3_REGION": "us-east-1", "SECRET_KEY": "bench",
           "DATABASE_URL": args.database_url or f"sqlite:///{tmp.name}/bench.db",
           "MAX_UPLOAD_MB": "2048", "LOGIN_RATE_LIMIT": "1000 per minute"}
    app, url = start_app(env)
    rounds = []
    try:
        raw = Minio(s3_url.split("//")[1], access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")
        raw.make_bucket("raw-baseline")
        headers = {"Authorization": f"Bearer {token(url)}"}
        session = requests.Session()
        for n in range(args.rounds):
            # Raw and app alternate, so both see the same machine state; each round is a fresh case.
            cpu0 = (cpu_self(), s3.cpu_seconds(), app.cpu_seconds())
            t0 = time.perf_counter()
            for i, data in enumerate(files):
                raw.put_object("raw-baseline", f"round{n}/{i}.dcm", io.BytesIO(data), len(data),
                               content_type="application/dicom")
            raw_s = time.perf_counter() - t0
            cpu1 = (cpu_self(), s3.cpu_seconds(), app.cpu_seconds())

            case = new_case(url, headers, session)
            t0 = time.perf_counter()
            accepted = upload_dicom(url, case, files, headers, session, batch=args.batch)
            app_s = time.perf_counter() - t0
            cpu2 = (cpu_self(), s3.cpu_seconds(), app.cpu_seconds())
            assert accepted == len(files), (accepted, len(files))
            rounds.append((raw_s, app_s, cpu0, cpu1, cpu2))

        items = session.get(f"{url}/api/cases/{case}/instances", headers=headers, timeout=30).json()["items"]
        sample = items[:: max(1, len(items) // args.render_samples)][: args.render_samples]
        cold, warm = [], []
        for bucket in (cold, warm):
            for item in sample:
                t = time.perf_counter()
                r = session.get(f"{url}{item['rendered']}", headers=headers, timeout=30)
                bucket.append(time.perf_counter() - t)
                r.raise_for_status()
    finally:
        app.stop()
        s3.stop()
        tmp.cleanup()

    for n, (raw_s, app_s, cpu0, cpu1, cpu2) in enumerate(rounds, 1):
        raw_cpu = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        app_cpu = [b - a for a, b in zip(cpu1, cpu2, strict=True)]
        print(f"round {n}: raw {mb / raw_s:6.1f} MB/s  app {mb / app_s:6.1f} MB/s  ratio {raw_s / app_s:.2f}   "
              f"cpu s (client/s3/app) raw {raw_cpu[0]:.2f}/{raw_cpu[1]:.2f}/{raw_cpu[2]:.2f} "
              f"app {app_cpu[0]:.2f}/{app_cpu[1]:.2f}/{app_cpu[2]:.2f}")
    raw_s = statistics.median(r[0] for r in rounds)
    app_s = statistics.median(r[1] for r in rounds)
    raw_mbps, app_mbps = mb / raw_s, mb / app_s
    print(f"median of {len(rounds)} rounds:")
    print(f"raw minio put : {raw_mbps:7.1f} MB/s  {len(files) / raw_s:7.1f} instances/s  ({raw_s:.2f} s)")
    print(f"app HTTP ingest: {app_mbps:7.1f} MB/s  {len(files) / app_s:7.1f} instances/s  ({app_s:.2f} s, "
          f"batches of {args.batch})")
    print(f"ratio app/raw : {app_mbps / raw_mbps:.2f}  (median of {len(rounds)} rounds; target >= 0.70)")
    print(f"render 512x512 cold  : p50 {statistics.median(cold) * 1000:6.1f} ms  p95 {pct(cold, 95) * 1000:6.1f} ms"
          f"  (n={len(cold)})")
    print(f"render 512x512 cached: p50 {statistics.median(warm) * 1000:6.1f} ms  p95 {pct(warm, 95) * 1000:6.1f} ms"
          f"  (n={len(warm)})")


if __name__ == "__main__":
    main()
