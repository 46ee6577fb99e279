"""A server whose shared memory (/dev/shm) is full goes on taking uploads: no file lost, no crash.

Uploaded files reach the ingest workers through shared memory segments. A segment's memory is
only allocated when a page is first written, and a write that /dev/shm has no room for kills the
whole server with SIGBUS (a container's /dev/shm is 64 MB unless it is given more). Segments are
now reserved when they are made; without room, a part is spooled to a temp file and prepared in
the server process.

Each test runs in a private mount namespace whose /dev/shm is a tmpfs of the given size: a server
(``python run.py``), or a script on the segment functions. That needs root (CI runs as root);
elsewhere the tests are skipped.
"""

import io
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

from tests.imaging.dicom_samples import ct_series, read, sample
from tests.support.live import ProcessServer

pytestmark = pytest.mark.slow


def _private_shm_possible() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",  # noqa: S607
                            "mount -t tmpfs -o size=4k tmpfs /dev/shm"], capture_output=True, check=False)
    return probe.returncode == 0


requires_private_shm = pytest.mark.skipif(not _private_shm_possible(),
                                          reason="mounting a private /dev/shm (unshare --mount) needs root")


class SmallShmServer(ProcessServer):
    """``python run.py`` whose /dev/shm is a tmpfs of its own, of shm_size (e.g. "3m")."""

    def __init__(self, env: dict, log_dir, shm_size: str):
        # The size and the interpreter are the script's arguments ($1, $0), never spliced into it.
        self.command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs -o size="$1" tmpfs /dev/shm && exec "$0" run.py', sys.executable, shm_size]
        super().__init__(env, log_dir)


def big_slice(number: int, side: int = 1024) -> tuple[str, bytes]:
    """A 2 MB CT slice (side x side, 16-bit): larger than the 1 MB a shared segment starts with."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.SOPInstanceUID = f"{ds.SeriesInstanceUID}.9{number}"
    ds.InstanceNumber = 900 + number
    ds.Rows = ds.Columns = side
    ds.PixelData = np.random.default_rng(number).integers(0, 2000, (side, side), dtype=np.int16).tobytes()
    out = io.BytesIO()
    ds.save_as(out)
    return f"BIG{number}", out.getvalue()


@pytest.fixture
def serve(app, database_url, tmp_path):
    """Start servers with a small /dev/shm on the test's database and store; stop them at the end."""
    servers = []

    def start(shm_size: str) -> SmallShmServer:
        env = {"DATABASE_URL": database_url, "UPLOAD_FOLDER": app.config["UPLOAD_FOLDER"], "SECRET_KEY": "shm-test",
               "INGEST_WORKERS": "2"}
        server = SmallShmServer(env, tmp_path, shm_size)
        servers.append(server)
        return server.wait()

    yield start
    for server in servers:
        server.stop()


def post(url: str, case_id: int, headers: dict, files: list[tuple[str, bytes]]) -> requests.Response:
    return requests.post(f"{url}/api/cases/{case_id}/files", headers=headers, timeout=120,
                         files=[("files", (name, data, "application/dicom")) for name, data in files])


def assert_stored_as_sent(url: str, case_id: int, headers: dict, sent: list[tuple[str, bytes]]) -> None:
    """Every file sent is in the case once, de-identified, with its pixel data unchanged."""
    items = requests.get(f"{url}/api/cases/{case_id}/instances", headers=headers, timeout=30).json()["items"]
    assert len(items) == len(sent)
    by_number = {read(data).InstanceNumber: read(data) for _, data in sent}
    for item in items:
        r = requests.get(f"{url}/api/cases/{case_id}/instances/{item['sop_instance_uid']}/file", headers=headers,
                         timeout=30)
        assert r.status_code == 200
        stored = read(r.content)
        assert stored.PatientName == f"HUIZHEN^CASE{case_id}"
        assert stored.PatientIdentityRemoved == "YES"
        assert stored.PixelData == by_number[stored.InstanceNumber].PixelData


@requires_private_shm
@pytest.mark.parametrize("shm_size", ["4k", "3m"])
def test_two_uploads_at_once_on_a_full_dev_shm_store_every_file(serve, make_user, make_case, token_for, shm_size):
    """4k: no segment at all (every part spooled, every file prepared in the server); 3m: room for a few."""
    owner = make_user(specialty="general_practice", level="county")
    case_id = make_case(owner)
    headers = {"Authorization": f"Bearer {token_for(owner)}"}
    server = serve(shm_size)
    batches = [ct_series(12, first=1), [*ct_series(10, first=13), big_slice(1), big_slice(2)]]
    answers: dict[int, requests.Response] = {}

    def send(i: int) -> None:
        answers[i] = post(server.url, case_id, headers, batches[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert server.proc.poll() is None, "the server died (SIGBUS on a full /dev/shm?)"
    for i, batch in enumerate(batches):
        assert answers[i].status_code == 200, answers[i].text
        assert len(answers[i].json()["accepted"]) == len(batch)
        assert answers[i].json()["rejected"] == []
    assert_stored_as_sent(server.url, case_id, headers, [f for batch in batches for f in batch])
    assert "shared memory (/dev/shm) is full" in Path(server.log.name).read_text()


@requires_private_shm
def test_a_file_that_cannot_grow_in_shared_memory_goes_to_disk(serve, make_user, make_case, token_for):
    """1m: a 2 MB part fills its first segment and cannot grow; it is spilled, then prepared here."""
    owner = make_user(specialty="general_practice", level="county")
    case_id = make_case(owner)
    headers = {"Authorization": f"Bearer {token_for(owner)}"}
    server = serve("1m")
    sent = [big_slice(1), *ct_series(3, first=1), big_slice(2)]
    r = post(server.url, case_id, headers, sent)
    assert server.proc.poll() is None, "the server died (SIGBUS on a full /dev/shm?)"
    assert r.status_code == 200, r.text
    assert len(r.json()["accepted"]) == len(sent)
    assert_stored_as_sent(server.url, case_id, headers, sent)
    assert "shared memory (/dev/shm) is full" in Path(server.log.name).read_text()
    # Later uploads, with the room back, still go through the workers and are stored the same way.
    more = ct_series(2, first=10)
    assert post(server.url, case_id, headers, more).status_code == 200
    assert_stored_as_sent(server.url, case_id, headers, sent + more)


# Run in a private mount namespace with a 3 MB /dev/shm, as the server above, but on the segment
# functions themselves: what each step leaves in use and in /dev/shm, and what is logged.
_SEGMENTS_SCRIPT = r"""
import logging, os, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(message)s")
from app.imaging import multipart, workers

MB = 1 << 20
def state(step):
    print(step, workers.segments_in_use(), len(os.listdir("/dev/shm")), flush=True)

a, b = workers._take(MB), workers._take(MB)
workers.release(a); workers.release(b)
state("kept")                      # both kept for the next file: 2 of 3 MB
c = workers._take(2 * MB)          # no room until the kept ones are given back; then there is
state("retried")
try:
    workers._take(2 * MB)          # no room even then
except workers.SharedMemoryFull as exc:
    print("full", exc.errno == __import__("errno").ENOSPC)
state("refused")
part = multipart._Part()           # starts in the 1 MB left, cannot grow: goes to disk
body = bytes(range(256)) * (6 * 4096)
for i in range(0, len(body), 65536):
    part.write(body[i:i + 65536])
print("spilled", not isinstance(part.file, workers.SharedFile), part.done().read() == body)
part.discard()
workers.release(c)
workers._drop_free()
state("end")
"""


@requires_private_shm
def test_shared_memory_segments_are_given_back_and_the_warning_says_what_happened(tmp_path):
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",  # noqa: S607
                          'mount -t tmpfs -o size=3m tmpfs /dev/shm && exec "$0" -c "$1"',
                          sys.executable, _SEGMENTS_SCRIPT],
                         cwd=root, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    steps = {line.split()[0]: line.split()[1:] for line in lines if not line.startswith("LOG")}
    assert steps["kept"] == ["0", "2"]
    assert steps["retried"] == ["1", "1"]  # the kept segments went back to make room
    assert steps["full"] == ["True"]
    assert steps["refused"] == ["1", "1"]  # the refused take left nothing counted or made
    assert steps["spilled"] == ["True", "True"]
    assert steps["end"] == ["0", "0"]  # nothing left in use or in /dev/shm
    warnings = [line for line in lines if line.startswith("LOG")]
    # One warning, for the take that found no room; none for the one whose retry succeeded, and
    # none again within the minute for the part that went to disk.
    assert len(warnings) == 1, lines
    assert "shared memory (/dev/shm) is full" in warnings[0]
    assert lines.index(warnings[0]) > lines.index(next(line for line in lines if line.startswith("retried")))
