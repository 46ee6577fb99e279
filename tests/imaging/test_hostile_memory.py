"""The worst hostile files against the server in its own process: its peak memory stays bounded."""

from pathlib import Path

import pytest
import requests

from tests.imaging import hostile
from tests.support.live import ProcessServer

pytestmark = pytest.mark.slow
BOUND_MB = 300  # stated bound on the server's peak RSS growth for the whole hostile batch


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def server(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "hostile-memory-test", "UPLOAD_FOLDER": str(tmp_path / "up")}
    proc = ProcessServer(env, tmp_path)
    try:
        yield proc.wait()
    finally:
        proc.stop()


def test_peak_memory_stays_bounded_under_the_worst_files(server, make_user, make_case, token_for, tmp_path):
    owner = make_user()
    case_id = make_case(owner)
    headers = {"Authorization": f"Bearer {token_for(owner)}"}
    url = f"{server.url}/api/cases/{case_id}/files"

    def send(name: str, data: bytes) -> dict:
        r = requests.post(url, files=[("files", (name, data))], headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    # Warm up: imports, decoders and the first request's allocations are not the attack's.
    ct = hostile.dicom_bytes(hostile._ct())
    assert send("warm.dcm", ct)["accepted"]
    before = peak_rss_mb(server.proc.pid)

    worst = [("bomb.zip", hostile.big_zeros_zip(1024)), ("rle-huge.dcm", hostile.huge_frame_dicom(30000, 30000)),
             ("jpeg-huge.dcm", hostile.huge_frame_dicom(16000, 16000, source="SC_rgb_jpeg_dcmtk.dcm")),
             ("bomb.png", hostile.png_bomb(19999)), ("rotated.jpg", hostile.jpeg(9000, 8000, orientation=6)),
             ("zeros.dcm", bytes(64 * hostile.MIB))]
    for name, data in worst:
        answer = send(name, data)
        assert answer["accepted"] == [], name
        assert answer["rejected"][0]["error"], name
    growth = peak_rss_mb(server.proc.pid) - before
    assert growth < BOUND_MB, f"peak RSS grew by {growth:.0f} MB"
