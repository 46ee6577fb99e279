"""``kill -9`` of the server in the middle of a multi-file upload, on the local store and on S3.

The rows of an upload are committed once, after all its objects are stored; a crash before that
leaves objects no row refers to and no row without its object. ``storage-gc`` then removes exactly
those orphans and never an object the index refers to.
"""

import socket
import time
import uuid

import pytest
import requests
from minio import Minio

from app.extensions import db
from app.imaging.models import Attachment, Instance
from app.storage import get_store
from tests.imaging.dicom_samples import ct_series, sample
from tests.imaging.documents import report_pdf
from tests.support.s3server import S3Server

pytestmark = pytest.mark.slow
ACCESS, SECRET = "huizhen-test", "huizhen-test-secret"
BOUNDARY = "faultboundary7d2"


def part(name: str, data: bytes) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    """The app's store config (shared by the test's app and the killed server) and a way to list it."""
    if request.param == "local":
        folder = tmp_path / "uploads"  # the app fixture's UPLOAD_FOLDER
        yield {}, {"UPLOAD_FOLDER": str(folder)}, lambda: sorted(
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return
    s3 = S3Server().start()
    bucket = f"hz-{uuid.uuid4().hex[:12]}"
    config = {"STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": ACCESS,
              "S3_SECRET_KEY": SECRET, "S3_BUCKET": bucket, "S3_REGION": "us-east-1"}
    raw = Minio(f"{s3.host}:{s3.port}", access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")

    def listing():
        if not raw.bucket_exists(bucket):
            return []
        return sorted(o.object_name for o in raw.list_objects(bucket, recursive=True))

    yield config, config, listing
    s3.stop()


@pytest.fixture
def app_overrides(backend):
    return backend[0]


def indexed_keys(app) -> set[str]:
    with app.app_context():
        keys = set(db.session.scalars(db.select(Instance.object_key)))
        keys |= set(db.session.scalars(db.select(Attachment.object_key)))
        db.session.remove()
        return keys


def test_kill_mid_upload_records_nothing_half_and_gc_removes_only_orphans(
        app, backend, killable, make_user, make_case, token_for, runner):
    _, env, listing = backend
    owner = make_user()
    case_id = make_case(owner)
    auth = {"Authorization": f"Bearer {token_for(owner)}"}
    server = killable(**env)
    live = server.start()

    # An earlier, complete upload: a DICOM instance and a PDF attachment. It must survive everything.
    earlier = requests.post(f"{live.url}/api/cases/{case_id}/files", headers=auth, timeout=30, files=[
        ("files", ("MR_small.dcm", sample("MR_small.dcm").read_bytes())),
        ("files", ("report.pdf", report_pdf()))])
    assert earlier.status_code == 200, earlier.text
    assert len(earlier.json()["accepted"]) == 2
    before = listing()
    assert len(before) == 2

    # A 30-file upload: send all but the last file, wait until the server has stored some of them
    # (it stores each file as it arrives; reads go 256 KB at a time), then kill -9.
    files = ct_series(30)
    body = b"".join(part(name, data) for name, data in files) + f"--{BOUNDARY}--\r\n".encode()
    cut = body.index(part(*files[-1]))
    head = (f"POST /api/cases/{case_id}/files HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(head + body[:cut])
        deadline = time.monotonic() + 20
        while len([k for k in listing() if k not in before]) < 4:
            assert time.monotonic() < deadline, "the server stored none of the files sent"
            time.sleep(0.05)
        server.kill()
    orphans = [k for k in listing() if k not in before]
    assert orphans

    # Restarted: only the earlier upload is in the index, and every indexed object is there.
    live = server.start()
    items = requests.get(f"{live.url}/api/cases/{case_id}/instances", headers=auth, timeout=10).json()["items"]
    assert [i["sop_instance_uid"] for i in items] == [earlier.json()["accepted"][0]["sop_instance_uid"]]
    indexed = indexed_keys(app)
    assert indexed == set(before)
    assert indexed <= set(listing())

    # storage-gc (no grace period) removes the orphans and nothing the index refers to.
    result = runner.invoke(args=["storage-gc", "--older-than-minutes", "0"])
    assert result.exit_code == 0, result.output
    assert f"removed {len(orphans)} " in result.output
    assert listing() == before
    with app.app_context():
        assert all(get_store().exists(k) for k in indexed)
    for item in items:
        r = requests.get(f"{live.url}/api/cases/{case_id}/instances/{item['sop_instance_uid']}/file",
                         headers=auth, timeout=10)
        assert r.status_code == 200

