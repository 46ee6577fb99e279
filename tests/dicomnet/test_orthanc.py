"""A real PACS sends: Orthanc, told to C-STORE a study to the case's AE title, and the study arrives de-identified."""

import io
import time

import pydicom
import pytest
import requests

from tests.dicomnet.test_scp import instances, wait_for_event
from tests.imaging.dicom_samples import sample, study_files
from tests.support.orthanc import Orthanc, require_or_skip


@pytest.fixture
def orthanc(tmp_path, node):
    require_or_skip()
    modalities = {"huizhen": [node["ae_title"], node["host"], node["port"]]}
    with Orthanc(tmp_path, modalities=modalities, aet="COUNTY_PACS") as server:
        yield server


def test_orthanc_sends_a_study_to_the_case(scp, api, case_id, node, orthanc):
    files = study_files("98892001")  # a multi-series MR study from pydicom's dicomdirtests
    originals = [pydicom.dcmread(p) for p in files]
    study_ids = {orthanc.upload(p.read_bytes())["ParentStudy"] for p in files}
    rle = orthanc.upload(sample("SC_rgb_rle.dcm").read_bytes())  # and a compressed instance, sent as is
    r = requests.post(f"{orthanc.url}/modalities/huizhen/store", timeout=60,
                      json={"Resources": [*study_ids, rle["ID"]], "Synchronous": True})
    assert r.status_code == 200, r.text
    items = instances(api, case_id)
    assert len(items) == len(files) + 1
    original_uids = {str(d.SOPInstanceUID) for d in originals}
    names = {str(d.PatientName) for d in originals}
    for item in items:
        assert item["sop_instance_uid"] not in original_uids
        body = api.get(f"/api/cases/{case_id}/instances/{item['sop_instance_uid']}/file").data
        ds = pydicom.dcmread(io.BytesIO(body))
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) not in names
    stored_rle = [i for i in items if i["rows"] == 100 and i["columns"] == 100]
    assert stored_rle
    # Orthanc may open one association per resource: each one leaves its own summary.
    wait_for_event(api, case_id, "dicom_received")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        summaries = [e["data"] for e in api.get(f"/api/cases/{case_id}/timeline").json["items"]
                     if e["action"] == "dicom_received"]
        if sum(s["stored"] for s in summaries) == len(files) + 1:
            break
        time.sleep(0.05)
    assert sum(s["stored"] for s in summaries) == len(files) + 1
    assert {s["calling_ae_title"] for s in summaries} == {"COUNTY_PACS"}
