"""The S3 path: the real minio client against a real S3 wire-protocol server (moto, server mode)."""

import hashlib
import io
import uuid

import pydicom
import pytest
from minio import Minio

from app.imaging.models import Instance
from tests.imaging.dicom_samples import ct_series, sample, study_files, upload
from tests.support.s3server import S3Server

ACCESS, SECRET = "huizhen-test", "huizhen-test-secret"


@pytest.fixture
def s3():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def bucket():
    return f"hz-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app_overrides(s3, bucket):
    return {"STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": ACCESS,
            "S3_SECRET_KEY": SECRET, "S3_BUCKET": bucket, "S3_REGION": "us-east-1"}


@pytest.fixture
def raw(s3):
    """An independent minio client, to look into the bucket the way an operator would."""
    return Minio(f"{s3.host}:{s3.port}", access_key=ACCESS, secret_key=SECRET, secure=False, region="us-east-1")


def objects(raw, bucket) -> list[str]:
    if not raw.bucket_exists(bucket):
        return []
    return sorted(o.object_name for o in raw.list_objects(bucket, recursive=True))


def post(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")


def distinct_instances(n: int) -> list[tuple[io.BytesIO, str]]:
    """n different CT instances made from CT_small.dcm (new SOP instance UIDs, same pixels)."""
    return [(io.BytesIO(data), name) for name, data in ct_series(n)]


def test_study_lands_in_the_bucket_and_reads_back(app, api, case_id, raw, bucket, s3):
    assert not raw.bucket_exists(bucket)  # created on first use
    files = study_files("98892001")
    r = post(api, case_id, upload(files))
    assert r.status_code == 200, r.json
    keys = objects(raw, bucket)
    assert len(keys) == len(files)
    assert all(k.startswith(f"cases/{case_id}/dicom/") for k in keys)
    from app.extensions import db
    with app.app_context():
        rows = {i.object_key: (i.sha256, i.size, i.sop_instance_uid) for i in db.session.scalars(db.select(Instance))}
    assert set(rows) == set(keys)
    for key in keys:
        body = raw.get_object(bucket, key).read()
        sha, size, sop = rows[key]
        assert hashlib.sha256(body).hexdigest() == sha
        # The PUT was signed with the digest the index records (the worker's), which the server checked.
        assert s3.signed_puts[f"/{bucket}/{key}"] == sha
        assert len(body) == size
        served = api.get(f"/api/cases/{case_id}/instances/{sop}/file")
        assert served.data == body
        assert pydicom.dcmread(io.BytesIO(body)).PatientIdentityRemoved == "YES"
    sop = rows[keys[0]][2]
    assert api.get(f"/api/cases/{case_id}/instances/{sop}/rendered").mimetype == "image/png"


def test_a_put_is_signed_with_the_digest_it_is_given_and_a_wrong_one_is_refused(app, raw, bucket, s3):
    from app.storage import StorageUnavailable, get_store

    data = b"DICM" * 10_000
    right = hashlib.sha256(data).hexdigest()
    with app.app_context():
        store = get_store()
        assert store.put("k/right", io.BytesIO(data), len(data), "application/dicom", sha256=right).sha256 == right
        assert s3.signed_puts[f"/{bucket}/k/right"] == right
        # A digest that is not the body's never lands: the server refuses the signed payload.
        with pytest.raises(StorageUnavailable) as refused:
            store.put("k/wrong", io.BytesIO(data), len(data), "application/dicom", sha256="0" * 64)
        assert refused.value.detail == "object store refused the request: XAmzContentSHA256Mismatch"
        # Without a digest the client hashes the body itself, and the store reports that digest.
        assert store.put("k/unknown", io.BytesIO(data), len(data), "application/dicom").sha256 == right
        assert s3.signed_puts[f"/{bucket}/k/unknown"] == right
    assert objects(raw, bucket) == ["k/right", "k/unknown"]


def test_a_multipart_put_signs_each_part_with_its_own_digest(app, raw, bucket, s3, monkeypatch):
    from app.storage import get_store
    from app.storage import s3 as s3_store

    monkeypatch.setattr(s3_store, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part
    data = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB: two parts
    digest = hashlib.sha256(data).hexdigest()
    with app.app_context():
        stored = get_store().put("k/big", io.BytesIO(data), len(data), "application/dicom", sha256=digest)
    assert stored.sha256 == digest
    assert f"/{bucket}/k/big" not in s3.signed_puts  # no single PUT: the parts went up, each checked
    assert raw.get_object(bucket, "k/big").read() == data


def test_store_down_before_upload_is_503_and_records_nothing(api, case_id, s3, raw, bucket):
    s3.stop()
    r = post(api, case_id, upload([sample("CT_small.dcm")]))
    assert r.status_code == 503
    assert r.json["error"] == "object store unavailable"
    assert "unreachable" in r.json["detail"]
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []
    s3.start()
    assert post(api, case_id, upload([sample("CT_small.dcm")])).status_code == 200
    assert len(objects(raw, bucket)) == 1


def test_outage_mid_upload_leaves_no_rows_and_gc_removes_the_orphans(app, api, case_id, s3, raw, bucket, runner):
    post(api, case_id, upload([sample("MR_small.dcm")]))  # an earlier upload that must survive
    before = objects(raw, bucket)
    s3.fail_after_puts = s3.object_puts + 5
    r = post(api, case_id, distinct_instances(30))
    assert r.status_code == 503
    assert r.json["error"] == "object store unavailable"
    items = api.get(f"/api/cases/{case_id}/instances").json["items"]
    assert len(items) == 1  # only the earlier instance; nothing of the failed request
    s3.fail_after_puts = None
    orphans = [k for k in objects(raw, bucket) if k not in before]
    assert orphans  # the outage also stopped the clean-up, as a real one would
    result = runner.invoke(args=["storage-gc", "--older-than-minutes", "0"])
    assert result.exit_code == 0, result.output
    assert f"removed {len(orphans)}" in result.output
    assert objects(raw, bucket) == before
    assert api.get(f"/api/cases/{case_id}/instances/{items[0]['sop_instance_uid']}/file").status_code == 200


def test_failed_upload_cleans_up_when_the_store_is_reachable(app, api, case_id, raw, bucket, monkeypatch):
    # A database failure after the objects are stored: the request's objects are deleted again.
    # (The failure is injected into our own recording step; the store and the client are real.)
    from app.imaging import ingest

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest, "_record", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = post(api, case_id, distinct_instances(6))
    assert r.status_code == 500
    assert objects(raw, bucket) == []
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []


def test_gc_aborts_multipart_uploads_a_crash_left_open(app, raw, bucket, case_id, runner):
    # What a process killed in the middle of put_object leaves: a multipart upload begun, one part
    # sent, never completed. Its parts use space but list_objects does not show them.
    raw.make_bucket(bucket)
    key = f"cases/{case_id}/dicom/crashed.dcm"
    upload_id = raw._create_multipart_upload(bucket, key, {})
    raw._upload_part(bucket, key, b"x" * (5 * 1024 * 1024), None, upload_id, 1)
    outside = raw._create_multipart_upload(bucket, "exports/report.pdf", {})
    assert [u.object_name for u in raw._list_multipart_uploads(bucket).uploads] == [key, "exports/report.pdf"]
    result = runner.invoke(args=["storage-gc", "--older-than-minutes", "0"])
    assert result.exit_code == 0, result.output
    assert "aborted 1 unfinished upload(s)" in result.output
    left = raw._list_multipart_uploads(bucket).uploads
    assert [(u.object_name, u.upload_id) for u in left] == [("exports/report.pdf", outside)]
    assert objects(raw, bucket) == []


@pytest.mark.parametrize("name", ["b", "ab", "-dash", "two..dots", "a" * 64, "Huizhen", "huizhen_cases"])
def test_an_invalid_bucket_name_stops_the_app_at_start_with_a_message_naming_it(name):
    from app.storage import build_store

    config = {"STORAGE_BACKEND": "s3", "S3_ENDPOINT": "http://127.0.0.1:9", "S3_ACCESS_KEY": "a",
              "S3_SECRET_KEY": "b", "S3_BUCKET": name}
    with pytest.raises(RuntimeError, match=f"S3_BUCKET '{name}' is not a valid bucket name"):
        build_store(config)
    build_store({**config, "S3_BUCKET": "huizhen-ok"})  # a valid name: no check reaches the network
