"""A server stopped by a signal takes its ingest worker processes (and their fork server) with it."""

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.imaging.dicom_samples import ct_series

pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    """Every process below pid, from the parent pid of each process in /proc.

    (Not /proc/<pid>/task/*/children: a child is listed under the thread that started it, and
    the server's request threads come and go, so a walk through them can miss the fork server.)
    """
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found.update(kids)
        todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads process trees from Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_exit_when_the_server_dies(killable, make_user, make_case, token_for, sig):
    owner = make_user()
    case_id = make_case(owner)
    server = killable(INGEST_WORKERS="2")
    live = server.start()
    files = [("files", (name, data)) for name, data in ct_series(3)]
    r = requests.post(f"{live.url}/api/cases/{case_id}/files", files=files, timeout=60,
                      headers={"Authorization": f"Bearer {token_for(owner)}"})
    assert r.status_code == 200, r.text
    helpers = descendants(live.proc.pid)
    assert len(helpers) >= 3  # the fork server and the two workers (and the resource tracker)
    os.kill(live.proc.pid, sig)  # the server alone, not its process group
    live.proc.wait(10)
    deadline = time.monotonic() + 30
    while any(alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in helpers if alive(p)]
    server.server.log.close()
    server.server = None
