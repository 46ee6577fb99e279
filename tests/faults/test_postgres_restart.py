"""PostgreSQL restarted under load (a private cluster: the machine's own serves other suites).

While it is down every request is a clean 503 with a JSON error; once it is back the same server
process answers again (pool_pre_ping replaces the dead connections), no restart needed.
"""

import threading
import time

import pytest
import requests

from tests.conftest import _migrate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def database_url(private_postgres, tmp_path_factory):
    _migrate(private_postgres.url, tmp_path_factory)
    return private_postgres.url


def test_requests_fail_cleanly_while_postgres_is_down_and_recover(private_postgres, app, killable, make_user,
                                                                 make_case, token_for, tmp_path):
    owner = make_user()
    case_id = make_case(owner)
    auth = {"Authorization": f"Bearer {token_for(owner)}"}
    server = killable(UPLOAD_FOLDER=str(tmp_path / "up"))
    live = server.start()
    seen: list[tuple[float, int, dict]] = []
    stop = threading.Event()

    def load() -> None:
        with requests.Session() as http:
            while not stop.is_set():
                r = http.get(f"{live.url}/api/cases/{case_id}/messages?since=0", headers=auth, timeout=10)
                json = r.headers.get("Content-Type", "").startswith("application/json")
                seen.append((time.monotonic(), r.status_code, r.json() if json else {"text": r.text[:300]}))
                time.sleep(0.02)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        private_postgres.stop("fast")  # drops every open connection, as a restart does
        down_from = time.monotonic()
        time.sleep(1.5)
        # pg_ctl returns once the server accepts connections, so answers can be 200 before it does.
        restarting = time.monotonic()
        private_postgres.start()
        up_at = time.monotonic()
        deadline = up_at + 15
        while not any(t > up_at and status == 200 for t, status, _ in seen[-20:]):
            assert time.monotonic() < deadline, seen[-5:]
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(15)

    statuses = {status for _, status, _ in seen}
    assert statuses <= {200, 503}, [body for _, status, body in seen if status == 500][:3]  # never a 500
    down = [(status, body) for t, status, body in seen if down_from + 0.2 < t < restarting]
    assert down
    assert all(status == 503 and body["error"] == "database unavailable" for status, body in down), \
        {(s, str(b)[:120]) for s, b in down}
    recovered = [t for t, status, _ in seen if t > up_at and status == 200]
    assert all(status == 200 for t, status, _ in seen if t > recovered[0])
    # No 500 was logged (SQLAlchemy's pool may log the dead connections it throws away: not ours).
    assert "unhandled" not in server.log_text()
