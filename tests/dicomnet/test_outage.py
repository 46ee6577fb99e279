"""C-STORE during a storage outage: a failure status for each instance not stored, and nothing half-way."""

import io

import pydicom
import pytest

from tests.conftest import free_port
from tests.dicomnet.conftest import scu
from tests.dicomnet.test_scp import instances, wait_for_event
from tests.imaging.dicom_samples import ct_series
from tests.storage import test_s3_store as s3_tests
from tests.storage.test_s3_store import ACCESS, SECRET

OUT_OF_RESOURCES = 0xA700
# The S3 fixtures of the store's own tests: a real S3 server (moto) that can fail on demand.
s3, bucket = s3_tests.s3, s3_tests.bucket


@pytest.fixture
def app_overrides(s3, bucket):
    return {"DICOM_PORT": free_port(), "STORAGE_BACKEND": "s3", "S3_ENDPOINT": s3.endpoint, "S3_ACCESS_KEY": ACCESS,
            "S3_SECRET_KEY": SECRET, "S3_BUCKET": bucket, "S3_REGION": "us-east-1"}


def send(node, n: int) -> list[int]:
    assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert assoc.is_established
    try:
        return [assoc.send_c_store(pydicom.dcmread(io.BytesIO(data))).Status for _, data in ct_series(n)]
    finally:
        assoc.release()


def test_store_down_answers_out_of_resources_and_records_no_instance(scp, api, case_id, node, s3):
    s3.stop()
    assert send(node, 2) == [OUT_OF_RESOURCES, OUT_OF_RESOURCES]
    assert instances(api, case_id) == []
    summary = wait_for_event(api, case_id, "dicom_received")
    assert summary["data"]["stored"] == 0
    assert summary["data"]["reasons"] == [{"reason": "object store unavailable", "count": 2}]


def test_outage_part_way_through_keeps_what_was_confirmed_and_nothing_else(scp, api, case_id, node, s3):
    s3.fail_after_puts = s3.object_puts + 3
    statuses = send(node, 6)
    assert statuses == [0, 0, 0, OUT_OF_RESOURCES, OUT_OF_RESOURCES, OUT_OF_RESOURCES]
    # Exactly the instances answered with Success are in the case, each one complete.
    items = instances(api, case_id)
    assert len(items) == 3
    s3.fail_after_puts = None
    for item in items:
        assert api.get(f"/api/cases/{case_id}/instances/{item['sop_instance_uid']}/file").status_code == 200
    assert send(node, 6) == [0] * 6  # the sender retries once the store is back: the rest arrive
    assert len(instances(api, case_id)) == 6
