"""A case in progress with real DICOM from pydicom, the people around it, and share links."""

import io

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.imaging.dicom_samples import read, sample, upload

# Native CT and MR, an RLE two-frame colour image and a JPEG baseline one: four studies.
FILES = ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle_2frame.dcm", "SC_jpeg_no_color_transform.dcm")


@pytest.fixture
def world(api_as, make_user, make_case):
    """Owner, consultant (accepted), participant, removed participant, outsider; the files uploaded."""
    ids = {name: make_user(specialty=s) for name, s in (
        ("owner", "general_practice"), ("consultant", "radiology"), ("participant", "pathology"),
        ("removed", "oncology"), ("outsider", "cardiology"))}
    case_id = make_case(ids["owner"], specialty="radiology")
    owner, consultant = api_as(ids["owner"]), api_as(ids["consultant"])
    r = owner.post(f"/api/cases/{case_id}/files", data={"files": upload([sample(f) for f in FILES])},
                   content_type="multipart/form-data")
    assert r.status_code == 200
    assert not r.json["rejected"], r.json
    assert owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": ids["consultant"]}).status_code == 200
    assert consultant.post(f"/api/cases/{case_id}/accept").status_code == 200
    for who in ("participant", "removed"):
        r = consultant.post(f"/api/cases/{case_id}/participants", json={"user_id": ids[who], "discipline": "pathology"})
        assert r.status_code == 201
    assert consultant.delete(f"/api/cases/{case_id}/participants/{ids['removed']}").status_code == 204
    return {"case_id": case_id, "ids": ids}


@pytest.fixture
def stored(world, api_as):
    """Return {file name: (study, series, sop)} as stored (de-identified) for the uploaded files."""
    api = api_as(world["ids"]["owner"])
    out = {}
    for name in FILES:
        original = read(sample(name).read_bytes())
        items = api.get(f"/api/cases/{world['case_id']}/instances").json["items"]
        # Instances keep their SOP class and instance number; the frame count tells them apart here.
        match = [i for i in items if i["frames"] == int(original.get("NumberOfFrames", 1) or 1)
                 and i["rows"] == original.Rows and i["columns"] == original.Columns]
        assert len(match) == 1, name
        out[name] = (match[0]["study_uid"], match[0]["series_uid"], match[0]["sop_instance_uid"])
    return out


@pytest.fixture
def make_link(api_as, world):
    """Return a function creating a link as the owner: make_link(scope="read") -> the 201 JSON."""

    def make(scope: str = "read", hours: float = 24, label: str = "PACS admin"):
        r = api_as(world["ids"]["owner"]).post(f"/api/cases/{world['case_id']}/links",
                                               json={"scope": scope, "expires_in_hours": hours, "label": label})
        assert r.status_code == 201, r.json
        return r.json

    return make


def stow_body(datasets, boundary="b0undary") -> bytes:
    """Encode datasets as a STOW-RS multipart/related body."""
    out = io.BytesIO()
    for ds in datasets:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        out.write(buf.getvalue())
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def fresh(name="CT_small.dcm"):
    """Return a pydicom test file under a new SOP Instance UID."""
    ds = pydicom.dcmread(sample(name))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return ds
