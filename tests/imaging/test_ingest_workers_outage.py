"""A storage outage while files are still in the worker processes: 503, nothing recorded."""

import io

import pytest

from app.imaging import workers
from tests.imaging.dicom_samples import ct_series
from tests.storage import test_s3_store as s3_tests
from tests.storage.test_s3_store import ACCESS, SECRET

# The S3 fixtures of the store's own tests: a real S3 server (moto) that can fail on demand.
s3, bucket = s3_tests.s3, s3_tests.bucket


@pytest.fixture
def app_overrides(s3, bucket):
    return {"INGEST_WORKERS": 2, "STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": ACCESS,
            "S3_SECRET_KEY": SECRET, "S3_BUCKET": bucket, "S3_REGION": "us-east-1"}


def post(api, case_id, n: int, first: int = 1):
    files = [(io.BytesIO(data), name) for name, data in ct_series(n, first=first)]
    return api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")


def test_outage_mid_upload_is_503_and_records_nothing(api, case_id, s3):
    s3.fail_after_puts = s3.object_puts + 5
    r = post(api, case_id, 30)
    assert r.status_code == 503
    assert r.json["error"] == "object store unavailable"
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []
    s3.fail_after_puts = None
    r = post(api, case_id, 3)
    assert r.status_code == 200
    assert len(r.json["accepted"]) == 3


def test_outage_gives_back_every_shared_memory_segment(api, case_id, s3):
    s3.fail_after_puts = s3.object_puts + 2
    assert post(api, case_id, 12).status_code == 503
    assert workers.segments_in_use() == 0
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []
