"""Hostile uploads: each is answered at once with a clear reason, in bounded time, and nothing is stored."""

import io
import logging
import os
import re
import time
from pathlib import Path

import pydicom
import pytest

from tests.imaging import hostile
from tests.imaging.dicom_samples import sample


def post(api, case_id, files: list[tuple[str, bytes]]):
    started = time.monotonic()
    r = api.post(f"/api/cases/{case_id}/files", data={"files": [(io.BytesIO(d), n) for n, d in files]},
                 content_type="multipart/form-data")
    return r, time.monotonic() - started


def reasons(r) -> dict[str, str]:
    return {x["filename"]: x["error"] for x in r.json["rejected"]}


def assert_nothing_stored(app, api, case_id):
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []
    case = api.get(f"/api/cases/{case_id}").json
    assert case["studies"] == []
    assert case["attachments"] == []
    root = Path(app.config["UPLOAD_FOLDER"])
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_unrecognised_content_is_refused_at_once_not_parsed_as_dicom(app, api, case_id):
    r, took = post(api, case_id, [("zeros.dcm", bytes(8 * hostile.MIB))])
    assert r.status_code == 200
    assert reasons(r)["zeros.dcm"].startswith("unsupported file type")
    assert took < 1.5  # was 4 s: the zeros went through a forced DICOM parse
    assert_nothing_stored(app, api, case_id)


def test_zip_of_zeros_is_answered_quickly_as_a_zip_bomb(app, api, case_id):
    r, took = post(api, case_id, [("study.zip", hostile.zeros_zip(32))])
    assert r.status_code == 200
    assert "ZIP bomb" in reasons(r)["study.zip"]
    assert took < 2
    assert_nothing_stored(app, api, case_id)


def test_a_deflate_bomb_among_stored_members_is_refused_alone(app, api, case_id):
    # Incompressible company keeps the archive as a whole under the ratio; the member is not.
    ct = hostile.dicom_bytes(pydicom.dcmread(sample("CT_small.dcm")))
    data = hostile.zip_of({"ct.dcm": ct, "noise.bin": os.urandom(200_000), "bomb.dcm": bytes(8 * hostile.MIB)})
    r, _ = post(api, case_id, [("mixed.zip", data)])
    assert [a["filename"] for a in r.json["accepted"]] == ["mixed.zip/ct.dcm"]
    assert "ZIP bomb" in reasons(r)["mixed.zip/bomb.dcm"]


@pytest.mark.parametrize("implicit", [True, False])
def test_dicom_without_preamble_is_still_accepted(api, case_id, implicit):
    data = hostile.dicom_bytes(pydicom.dcmread(sample("CT_small.dcm")), preamble=False, implicit=implicit)
    assert data[128:132] != b"DICM"
    r, _ = post(api, case_id, [("IM0001", data)])
    assert r.json["rejected"] == []
    assert r.json["accepted"][0]["kind"] == "dicom"


def test_dicom_header_followed_by_zeros_is_refused_at_once(app, api, case_id):
    ds = pydicom.Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    data = hostile.dicom_bytes(ds, preamble=False) + bytes(8 * hostile.MIB)
    r, took = post(api, case_id, [("IM0002", data)])
    assert "not a DICOM file" in reasons(r)["IM0002"]
    assert took < 1.5
    assert_nothing_stored(app, api, case_id)


@pytest.mark.parametrize(("source", "side"), [("MR_small_RLE.dcm", 30000), ("SC_rgb_jpeg_dcmtk.dcm", 16000)])
def test_compressed_dicom_declaring_a_huge_frame_is_rejected_at_ingest(app, api, case_id, source, side):
    data = hostile.huge_frame_dicom(side, side, source=source)
    assert len(data) < 10_000
    r, took = post(api, case_id, [("huge.dcm", data)])
    assert reasons(r)["huge.dcm"] == f"frame too large: {side}×{side} pixels, at most 64 megapixels"
    assert took < 2
    assert_nothing_stored(app, api, case_id)


def test_instance_over_the_frame_limit_is_refused_at_render_before_decoding(app, api, case_id):
    app.config["MAX_FRAME_PIXELS"] = 10**10  # indexed under a higher limit (or before there was one)
    r, _ = post(api, case_id, [("big.dcm", hostile.huge_frame_dicom(9000, 9000))])
    sop = r.json["accepted"][0]["sop_instance_uid"]
    series = r.json["accepted"][0]["series_uid"]
    app.config["MAX_FRAME_PIXELS"] = 64_000_000
    rendered = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?wc=1&ww=2")
    assert rendered.status_code == 422
    assert rendered.json["detail"] == "frame too large: 9000×9000 pixels, at most 64 megapixels"
    assert api.get(f"/api/cases/{case_id}/series/{series}/thumbnail").status_code == 422


def test_render_checks_the_frame_size_from_the_file_itself():
    from app.imaging.render import RenderError, RenderRequest, render

    with pytest.raises(RenderError, match="frame too large"):
        render(hostile.huge_frame_dicom(30000, 30000), RenderRequest(), max_frame_pixels=64_000_000)


def test_baseline_jpeg_asked_small_is_decoded_small(api, case_id):
    from PIL import Image

    r, _ = post(api, case_id, [("rgb.dcm", sample("SC_rgb_jpeg_dcmtk.dcm").read_bytes())])
    sop = r.json["accepted"][0]["sop_instance_uid"]
    small = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?size=32")
    img = Image.open(io.BytesIO(small.data))
    assert img.size == (32, 32)
    assert img.mode == "RGB"


@pytest.mark.parametrize(("name", "make"), [
    ("bomb.png", lambda: hostile.png_bomb(12000)),
    ("rotated.jpg", lambda: hostile.jpeg(9000, 8000, orientation=6)),
    ("pillow-warns.png", lambda: hostile.png_bomb(19999)),
])
def test_photo_over_the_pixel_limit_is_rejected_not_decoded(app, api, case_id, name, make):
    data = make()
    r, took = post(api, case_id, [(name, data)])
    assert reasons(r)[name].startswith("image too large:")
    assert "at most 64 megapixels" in reasons(r)[name]
    assert took < 2
    assert_nothing_stored(app, api, case_id)


def _ct_with(**attributes) -> bytes:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    for name, value in attributes.items():
        setattr(ds, name, value)
    return hostile.dicom_bytes(ds)


@pytest.mark.parametrize(("attributes", "reason"), [
    ({"SOPInstanceUID": "1." + "2" * 132}, "invalid UID: 134 characters, at most 64"),
    ({"StudyInstanceUID": "1.2." + "3" * 200}, "invalid UID: 204 characters, at most 64"),
    ({"PhotometricInterpretation": "MONOCHROME2" + "X" * 30}, "invalid PhotometricInterpretation: 41 characters,"
                                                              " at most 16"),
    ({"InstanceNumber": "999999999999"}, "invalid instance_number: 999999999999 is out of range"),
])
def test_over_long_indexed_values_reject_that_file_only(app, api, case_id, attributes, reason):
    good = hostile.dicom_bytes(pydicom.dcmread(sample("MR_small.dcm")))
    r, _ = post(api, case_id, [("bad.dcm", _ct_with(**attributes)), ("good.dcm", good)])
    assert r.status_code == 200, r.json
    assert reasons(r) == {"bad.dcm": reason}
    assert [a["filename"] for a in r.json["accepted"]] == ["good.dcm"]
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1


@pytest.mark.parametrize("pool", [0, 2], ids=["request-thread", "worker-pool"])
def test_files_the_pydicom_path_fails_on_are_rejected_alone(app, api, case_id, caplog, pool):
    """Its own errors (bad lengths, unknown VRs, deep nesting, values no VR holds) reject that file only."""
    app.config["INGEST_WORKERS"] = pool
    good = hostile.dicom_bytes(pydicom.dcmread(sample("MR_small.dcm")))
    files = [(name, make()) for name, make, _ in hostile.MALFORMED] + [("good.dcm", good)]
    with caplog.at_level(logging.WARNING, logger="app.imaging.ingest"):
        r, _ = post(api, case_id, files)
    assert r.status_code == 200, r.json
    assert [a["filename"] for a in r.json["accepted"]] == ["good.dcm"]
    assert sorted(reasons(r)) == sorted(name for name, _, _ in hostile.MALFORMED)
    for name, _, error in hostile.MALFORMED:
        assert re.fullmatch(rf"malformed DICOM file: [a-z -]+ \({error}\)", reasons(r)[name]), reasons(r)[name]
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1
    assert len([p for p in Path(app.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file()]) == 1
    if not pool:  # the workers log in their own processes
        logged = [record.getMessage() for record in caplog.records if record.name == "app.imaging.ingest"]
        assert logged == [f"rejected a DICOM file the pydicom path failed on ({error})"
                          for *_, error in hostile.MALFORMED]


def test_no_zip_entry_vanishes_from_both_lists(api, case_id):
    ct = hostile.dicom_bytes(pydicom.dcmread(sample("CT_small.dcm")))
    names = ["CD/IM1", "CD/.hidden.dcm", ".profile", "CD/._IM1", "__MACOSX/CD/._IM1", "CD/.DS_Store"]
    r, _ = post(api, case_id, [("cd.zip", hostile.zip_of(dict.fromkeys(names, ct)))])
    listed = [a["filename"] for a in r.json["accepted"]] + [x["filename"] for x in r.json["rejected"]]
    assert sorted(listed) == sorted(f"cd.zip/{n}" for n in names)
    assert reasons(r)["cd.zip/CD/.hidden.dcm"] == "hidden file (name starts with '.'): skipped"
    assert reasons(r)["cd.zip/__MACOSX/CD/._IM1"] == "macOS metadata, not a file of the study: skipped"


@pytest.mark.parametrize(("name", "make", "reason"), hostile.CORPUS, ids=[c[0][:20] for c in hostile.CORPUS])
def test_hostile_file_is_refused_with_a_reason_quickly_and_nothing_is_stored(app, api, case_id, name, make, reason):
    r, took = post(api, case_id, [(name, make())])
    assert r.status_code == 200, r.json
    assert r.json["accepted"] == []
    assert r.json["rejected"], r.json
    for rejected in r.json["rejected"]:
        assert reason in rejected["error"]
        assert rejected["error"]
        assert len(rejected["filename"]) <= 255
        assert "\x00" not in rejected["filename"]
        assert "\u202e" not in rejected["filename"]
    assert took < 5  # a safety bound, not a benchmark
    assert_nothing_stored(app, api, case_id)


def _body(parts: bytes, boundary: str = "b0und") -> tuple[bytes, str]:
    return parts, f"multipart/form-data; boundary={boundary}"


CT = hostile.dicom_bytes(pydicom.dcmread(sample("CT_small.dcm")))
PART = b'--b0und\r\nContent-Disposition: form-data; name="files"; filename="IM1"\r\n\r\n'


@pytest.mark.parametrize(("body", "content_type"), [
    (PART + CT + b"\r\n--b0und--\r\n", "multipart/form-data"),  # no boundary parameter
    (PART + CT + b"\r\n--b0und--\r\n", "multipart/form-data; boundary=other"),  # a boundary never sent
    (PART + CT[: len(CT) // 2], "multipart/form-data; boundary=b0und"),  # cut mid-file
    (PART + CT + b"\r\n--b0und", "multipart/form-data; boundary=b0und"),  # no closing delimiter
    (b"--b0und\r\n" + b"X-Junk: y\r\n" * 5000, "multipart/form-data; boundary=b0und"),  # endless headers
    (b"--b0und\r\nContent-Type: text/plain\r\n\r\nx\r\n--b0und--\r\n", "multipart/form-data; boundary=b0und"),
    (b"--b0und garbage", "multipart/form-data; boundary=b0und"),
], ids=["no-boundary", "wrong-boundary", "cut-mid-file", "no-closing", "header-flood", "no-disposition",
        "garbage"])
def test_broken_multipart_body_is_a_clear_400_and_stores_nothing(app, api, case_id, body, content_type):
    started = time.monotonic()
    r = api.post(f"/api/cases/{case_id}/files", data=body, content_type=content_type)
    assert r.status_code == 400, r.json
    assert r.json["error"]
    assert time.monotonic() - started < 5
    assert_nothing_stored(app, api, case_id)


@pytest.mark.parametrize("pool", [False, True], ids=["request-thread", "worker-pool"])
@pytest.mark.parametrize(("said", "written"), [("1.2.840.10008.1.2.1", True), ("1.2.840.10008.1.2", False)],
                         ids=["implicit-under-explicit-uid", "explicit-under-implicit-uid"])
def test_a_file_whose_dataset_is_not_in_the_encoding_its_meta_names_is_stored_as_pydicom_reads_it(
        app, api, case_id, said, written, pool):
    """Some exporters label an implicit VR dataset as explicit (or the reverse); pydicom reads it anyway, so must we."""
    app.config["INGEST_WORKERS"] = 2 if pool else 0
    original = pydicom.dcmread(sample("CT_small.dcm"))
    data = hostile.mislabelled(original, said=said, implicit=written)
    with pytest.warns(UserWarning, match="VR"):  # pydicom itself reads it, with a warning
        assert pydicom.dcmread(io.BytesIO(data)).PatientName == original.PatientName

    r, _ = post(api, case_id, [("mislabelled.dcm", data)])
    assert r.status_code == 200
    assert r.json["rejected"] == []
    sop = r.json["accepted"][0]["sop_instance_uid"]
    stored = pydicom.dcmread(io.BytesIO(api.get(f"/api/cases/{case_id}/instances/{sop}/file").data))
    assert stored.PatientName != original.PatientName  # de-identified
    assert (stored.pixel_array == original.pixel_array).all()
    assert stored.Rows == original.Rows
    assert stored.ImagePositionPatient == original.ImagePositionPatient


def test_a_rejection_from_a_worker_carries_no_pydicom_message():
    """pydicom's messages quote values (patient data): a rejection reaches the server without them."""
    from app.imaging import workers
    from app.imaging.dicom import RejectedFile
    from app.imaging.ingest import prepare_dicom

    options = {"force": False, "fast": False, "secret": "s", "pseudonym": "P", "max_frame_pixels": 64_000_000,
               "max_decoded_bytes": 2**31}
    pool = workers.WorkerPool(1)
    try:
        for name, make, error in hostile.MALFORMED:
            with pytest.raises(RejectedFile) as caught:
                pool.submit(prepare_dicom, make(), **options).result()
            assert error in str(caught.value), name
            # The pool attaches the worker's traceback as the cause; it must end at our RejectedFile.
            remote = str(caught.value.__cause__)
            assert "direct cause" not in remote, (name, remote)
            assert "During handling" not in remote, (name, remote)
            assert "RejectedFile" in remote, (name, remote)
    finally:
        pool.shutdown(wait=True)
