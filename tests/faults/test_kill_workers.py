"""A server stopped by a signal takes its ingest worker processes (and their fork server) with it."""

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.imaging.dicom_samples import ct_series
from tests.support.proctree import alive, descendants

pytestmark = pytest.mark.slow


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
