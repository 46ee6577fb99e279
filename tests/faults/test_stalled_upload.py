"""A stalled upload frees its server thread: the connection is closed after the read timeout."""

import socket
import time

import pytest

from tests.support.live import ProcessServer, ProductionServer

pytestmark = pytest.mark.slow
TIMEOUT = 1.0


@pytest.fixture(params=[ProcessServer, ProductionServer], ids=["run.py", "gunicorn"])
def server(request, database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "stall-test", "UPLOAD_FOLDER": str(tmp_path / "up"),
           "UPLOAD_READ_TIMEOUT_SECONDS": str(TIMEOUT)}
    live = request.param(env, tmp_path)
    try:
        yield live.wait()
    finally:
        live.stop()


def test_stalled_upload_is_cut_off_and_stores_nothing(app, server, make_user, make_case, token_for, api_as, tmp_path):
    owner = make_user()
    case_id = make_case(owner)
    token = token_for(owner)
    head = (f"POST /api/cases/{case_id}/files HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
            '--XyZ\r\nContent-Disposition: form-data; name="files"; filename="a.dcm"\r\n'
            "Content-Type: application/dicom\r\n\r\n").encode() + b"\0" * 1000
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head)
        sock.settimeout(TIMEOUT * 10)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):  # then the client stalls: it never sends the rest
            answer += chunk
        waited = time.monotonic() - started
    assert waited < TIMEOUT * 5, "the server kept the stalled connection open"
    if answer:  # werkzeug answers 408 before closing; either way the thread is free again
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert api_as(owner).get(f"/api/cases/{case_id}/instances").json["items"] == []
    assert api_as(owner).get(f"/api/cases/{case_id}").json.get("attachments", []) == []
    stored = [p for p in (tmp_path / "up").rglob("*") if p.is_file()]
    assert stored == []
    # The server still serves everybody else.
    assert api_as(owner).get(f"/api/cases/{case_id}").status_code == 200
