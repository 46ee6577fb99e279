"""Preparing DICOM files in one process: the fast path (app.imaging.scan) against the pydicom path.

CPU milliseconds per file (``time.process_time``, best of --repeat passes) of
``ingest.prepare_dicom`` on bench/ingest.py's synthetic CT slices (512×512, 16-bit, 530 KB),
explicit VR as generated and the same files rewritten in implicit VR; and of the two SHA-256
digests a worker also computes per file. The two paths' outputs are compared first.

    python bench/prepare.py [--slices 60] [--repeat 3]
"""

import argparse
import hashlib
import io
import sys
import time
import warnings
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ingest import synthetic_series  # noqa: E402

from app.imaging import dicom  # noqa: E402
from app.imaging.ingest import prepare_dicom  # noqa: E402

OPTIONS = {"force": False, "secret": "bench-secret", "pseudonym": "HUIZHEN^CASE1",
           "max_frame_pixels": 64_000_000, "max_decoded_bytes": 2**31}


def implicit(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=True, little_endian=True)
    return out.getvalue()


def best_ms(fn, files: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for data in files:
            fn(data)
        best = min(best, (time.process_time() - t) / len(files) * 1000)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    explicit = synthetic_series(args.slices)
    for label, files in (("explicit VR", explicit), ("implicit VR", [implicit(f) for f in explicit])):
        for data in files[:3]:
            a, b = (prepare_dicom(data, fast=fast, **OPTIONS) for fast in (False, True))
            assert dicom.assemble(a.pieces, data) == dicom.assemble(b.pieces, data), "the paths disagree"
            assert (a.facts, a.uid_map) == (b.facts, b.uid_map), "the paths disagree"
        slow = best_ms(lambda d: prepare_dicom(d, fast=False, **OPTIONS), files, args.repeat)
        fast = best_ms(lambda d: prepare_dicom(d, **OPTIONS), files, args.repeat)
        print(f"{label}: pydicom path {slow:.2f} ms/file, fast path {fast:.2f} ms/file ({slow / fast:.1f}x)")
    sha = best_ms(lambda d: hashlib.sha256(d).digest(), explicit, args.repeat)
    print(f"one SHA-256 of a {len(explicit[0]) // 1024} KB file: {sha:.2f} ms (a worker computes two per file)")


if __name__ == "__main__":
    main()
