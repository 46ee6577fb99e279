"""POST /api/cases/{id}/files/check: which of a resuming uploader's files the case already holds."""

import hashlib
import io

import pydicom

from tests.imaging.dicom_samples import ct_series, sample
from tests.imaging.documents import report_pdf


def post_files(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": [(io.BytesIO(d), n) for n, d in files]},
                    content_type="multipart/form-data")


def check(api, case_id, **body):
    return api.post(f"/api/cases/{case_id}/files/check", json=body)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sop_of(data: bytes) -> str:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID


def test_stored_files_are_known_by_their_hash_as_sent_and_their_original_uid(api, case_id):
    slices = ct_series(4)
    photo = ("photo.jpg", sample_jpeg())
    pdf = ("report.pdf", report_pdf())
    r = post_files(api, case_id, [*slices[:2], photo, pdf])
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 4, r.json
    stored_uids = {a["sop_instance_uid"] for a in r.json["accepted"] if a["kind"] == "dicom"}

    hashes = [sha(d) for _, d in [*slices, photo, pdf]]
    uids = [sop_of(d) for _, d in slices]
    r = check(api, case_id, sha256=hashes, sop_instance_uids=uids)
    assert r.status_code == 200, r.json
    # The DICOM, the photo and the PDF were stored changed (de-identified, metadata stripped): the hash
    # that matches is the one of the bytes the client sent, not of what is stored.
    assert r.json["have_sha256"] == sorted([sha(slices[0][1]), sha(slices[1][1]), sha(photo[1]), sha(pdf[1])])
    assert r.json["have_sop_instance_uids"] == sorted(uids[:2])
    # The de-identified UIDs the index holds are not what a client reads from its files.
    assert not stored_uids & set(uids)
    assert check(api, case_id, sop_instance_uids=sorted(stored_uids)).json["have_sop_instance_uids"] == []


def test_a_uid_known_only_as_a_reference_is_not_an_instance(api, case_id):
    (name, data), = ct_series(1)
    post_files(api, case_id, [(name, data)])
    ds = pydicom.dcmread(io.BytesIO(data))
    # The study and series UIDs are in the case's UID map too, but no instance has them.
    r = check(api, case_id, sop_instance_uids=[ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID])
    assert r.json["have_sop_instance_uids"] == [ds.SOPInstanceUID]


def test_files_of_another_case_are_not_reported(api, api_as, make_case, make_user, case_id):
    slices = ct_series(2)
    other_owner = make_user()
    other_case = make_case(other_owner)
    assert post_files(api_as(other_owner), other_case, slices).status_code == 200
    r = check(api, case_id, sha256=[sha(d) for _, d in slices], sop_instance_uids=[sop_of(d) for _, d in slices])
    assert r.json == {"have_sha256": [], "have_sop_instance_uids": []}


def test_check_is_gated_like_an_upload(make_case_in_progress, api_as):
    case_id, ids = make_case_in_progress(users={"radiology": {"specialty": "radiology"}, "outsider": {}},
                                         participants={"radiology": "radiology"})
    body = {"sha256": ["0" * 64]}
    assert check(api_as(ids["outsider"]), case_id, **body).status_code == 404
    assert check(api_as(ids["radiology"]), case_id, **body).status_code == 403  # reads, may not upload
    assert check(api_as(ids["consultant"]), case_id, **body).status_code == 200
    assert check(api_as(ids["owner"]), case_id, **body).status_code == 200


def test_check_rejects_malformed_lists(api, case_id):
    assert check(api, case_id, sha256=["not-a-hash"]).status_code == 400
    assert check(api, case_id, sop_instance_uids=["1.2.<script>"]).status_code == 400
    assert check(api, case_id, sha256=["0" * 64] * 1001).status_code == 400
    assert check(api, case_id).json == {"have_sha256": [], "have_sop_instance_uids": []}


def sample_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "county hospital phone"  # Make: stripped on the way in, so the stored bytes differ
    Image.new("RGB", (16, 16), (200, 40, 40)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_check_sample_file_matches_after_upload_of_a_real_sample(api, case_id):
    data = sample("CT_small.dcm").read_bytes()
    post_files(api, case_id, [("CT_small.dcm", data)])
    r = check(api, case_id, sha256=[sha(data)], sop_instance_uids=[sop_of(data)])
    assert r.json == {"have_sha256": [sha(data)], "have_sop_instance_uids": [sop_of(data)]}
