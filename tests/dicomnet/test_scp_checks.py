"""What the listener re-checks during an association, and what it bounds, for a careless or hostile sender."""

import io

import pydicom
import pytest

from tests.conftest import free_port
from tests.dicomnet.conftest import scu
from tests.imaging.dicom_samples import ct_series, sample


def instances(api, case_id) -> list[dict]:
    return api.get(f"/api/cases/{case_id}/instances").json["items"]


def test_a_case_withdrawn_during_an_association_takes_no_more_images(scp, api, case_id, node):
    """Admission is not a licence for the association's life: each C-STORE asks whether the case takes images."""
    assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert assoc.is_established
    try:
        first, second = (pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(2))
        assert assoc.send_c_store(first).Status == 0x0000
        r = api.post(f"/api/cases/{case_id}/withdraw", json={"reason": "sent to the wrong hospital"})
        assert r.status_code == 200
        refused = assoc.send_c_store(second)
        assert refused.Status == 0x0124  # Refused: Not Authorized
        assert "no longer takes images" in refused.ErrorComment
    finally:
        assoc.release()
    assert len(instances(api, case_id)) == 1


class TestSize:
    """A C-STORE is bounded as an upload is (MAX_CONTENT_LENGTH): here 1 MB."""

    @pytest.fixture
    def app_overrides(self):
        return {"DICOM_PORT": free_port(), "MAX_UPLOAD_MB": 1}

    def test_an_instance_larger_than_an_upload_may_be_is_refused(self, app, scp, api, case_id, node):
        big = pydicom.dcmread(sample("CT_small.dcm"))
        big.Rows = big.Columns = 1024  # 2 MB of 16-bit pixels: twice what one upload may carry
        big.PixelData = bytes(1024 * 1024 * 2)
        assert len(big.PixelData) > app.config["MAX_CONTENT_LENGTH"]
        small = pydicom.dcmread(io.BytesIO(ct_series(1)[0][1]))
        assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
        try:
            refused = assoc.send_c_store(big)
            stored = assoc.send_c_store(small).Status  # the association goes on
        finally:
            assoc.release()
        assert refused.Status == 0xA700  # Refused: Out of Resources
        assert refused.ErrorComment == "instance larger than 1 MB"
        assert stored == 0x0000
        assert len(instances(api, case_id)) == 1


def test_a_specialist_who_declined_can_no_longer_send_into_the_case(scp, api, api_as, make_user, case_id):
    """A share link stops working when its creator leaves the case; the AE title a specialist read does not."""
    specialist, successor = make_user(specialty="radiology"), make_user(specialty="radiology")
    assert api.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist}).status_code == 200
    learnt = api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").json  # their PACS is set up with it
    assert api_as(specialist).post(f"/api/cases/{case_id}/decline", json={"reason": "not my field"}).status_code == 200
    assert api.post(f"/api/cases/{case_id}/share", json={"specialist_id": successor}).status_code == 200
    assert api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").status_code == 404  # off the case
    assoc = scu(calling="FORMER").associate(learnt["host"], learnt["port"], ae_title=learnt["ae_title"])
    stored = assoc.is_established and assoc.send_c_store(
        pydicom.dcmread(io.BytesIO(ct_series(1)[0][1]))).Status == 0x0000
    if assoc.is_established:
        assoc.release()
    assert not stored


def test_each_holder_of_upload_rights_gets_a_title_of_their_own_and_it_lasts_their_access(
        scp, api, api_as, make_user, case_id, node):
    """The owner's title still works after the specialist's stopped; a participant removed stops at once,
    even within an association that was admitted while they were on the case."""
    specialist = make_user(specialty="radiology")
    assert api.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist}).status_code == 200
    theirs = api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").json
    assert theirs["ae_title"] != node["ae_title"]
    assert api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").json == theirs  # stable per holder
    assert api.get(f"/api/cases/{case_id}/dicom-node").json == node
    first, second = (pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(2))
    assoc = scu().associate(theirs["host"], theirs["port"], ae_title=theirs["ae_title"])
    assert assoc.is_established
    try:
        assert assoc.send_c_store(first).Status == 0x0000
        r = api_as(specialist).post(f"/api/cases/{case_id}/decline", json={"reason": "not my field"})
        assert r.status_code == 200
        assert assoc.send_c_store(second).Status == 0x0124
    finally:
        assoc.release()
    owners = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert owners.is_established
    try:
        assert owners.send_c_store(second).Status == 0x0000
    finally:
        owners.release()
    assert len(instances(api, case_id)) == 2
