"""What the listener re-checks during an association, and what it bounds, for a careless or hostile sender."""

import io

import pydicom

from tests.dicomnet.conftest import scu
from tests.imaging.dicom_samples import ct_series


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
