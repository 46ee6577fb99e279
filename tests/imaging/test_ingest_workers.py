"""Uploads prepared by the pool of worker processes: same answers, same files, and a dead worker costs nothing."""

import io
import os
import signal

import pydicom
import pytest

from app.imaging import workers
from tests.imaging.dicom_samples import ct_series, read, sample, upload
from tests.imaging.hostile import dicom_bytes, huge_frame_dicom, lying_transfer_syntax, truncated_dicom

FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm", "rtplan.dcm"]


@pytest.fixture
def app_overrides():
    return {"INGEST_WORKERS": 2}


def post(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")


HOSTILE = {"bomb.dcm": "frame too large", "truncated.dcm": "truncated", "lying.dcm": "encapsulated",
           "junk.txt": "unsupported file type"}


def mixed_upload() -> list:
    bare = dicom_bytes(pydicom.dcmread(sample("MR_small.dcm")), preamble=False)
    hostile = {"bomb.dcm": huge_frame_dicom(60_000, 60_000), "truncated.dcm": truncated_dicom(),
               "lying.dcm": lying_transfer_syntax(), "junk.txt": b"not a dicom file at all"}
    return [*upload([sample(n) for n in FILES]), (io.BytesIO(bare), "bare"),
            *[(io.BytesIO(data), name) for name, data in hostile.items()]]


def test_pool_answers_and_stores_what_the_request_thread_would(app, api, case_id, make_case, owner):
    """Same accepted files and per-file reasons as without the pool; stored files de-identified, pixels intact."""
    r = post(api, case_id, mixed_upload())
    assert r.status_code == 200, r.json
    assert workers.get_pool(2) is not None
    app.config["INGEST_WORKERS"] = 0
    inline_case = make_case(owner)
    inline = post(api, inline_case, mixed_upload())
    assert inline.status_code == 200, inline.json

    def names(answer, key):
        return [(e["filename"], e.get("error"), e.get("kind")) for e in answer.json[key]]

    assert names(r, "accepted") == names(inline, "accepted")
    assert names(r, "rejected") == names(inline, "rejected")
    reasons = {e["filename"]: e["error"] for e in r.json["rejected"]}
    assert set(reasons) == set(HOSTILE)
    assert all(HOSTILE[name] in reason for name, reason in reasons.items()), reasons
    stored_once = [e for e in r.json["accepted"] if not e["duplicate"] and e["filename"] in FILES]
    assert len(stored_once) == 4  # the two MR_small variants are one instance
    for entry in stored_once:
        original = pydicom.dcmread(sample(entry["filename"]))
        stored = read(api.get(f"/api/cases/{case_id}/instances/{entry['sop_instance_uid']}/file").data)
        assert stored.PatientIdentityRemoved == "YES"
        assert stored.PatientName == f"HUIZHEN^CASE{case_id}"
        if "PixelData" in original:
            assert stored.PixelData == original.PixelData


def test_a_killed_worker_costs_no_file_and_the_next_upload_gets_a_fresh_pool(api, case_id):
    assert post(api, case_id, upload([sample("CT_small.dcm")])).status_code == 200
    pool = workers.get_pool(2)
    for pid in list(pool._processes):  # noqa: SLF001 - the test kills the processes this pool started
        os.kill(pid, signal.SIGKILL)
    files = [(io.BytesIO(data), name) for name, data in ct_series(6)]
    r = post(api, case_id, files)
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 6
    assert r.json["rejected"] == []
    fresh = workers.get_pool(2)
    assert fresh is not pool
    r = post(api, case_id, [(io.BytesIO(data), name) for name, data in ct_series(3, first=7)])
    assert len(r.json["accepted"]) == 3
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1 + 6 + 3

