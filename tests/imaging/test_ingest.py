"""DICOM ingest through the HTTP API into the local object store (a temp folder)."""

import io
import zipfile
from pathlib import Path

import pydicom

from tests.imaging.dicom_samples import DICOMDIR_TESTS, read, sample, study_files, upload
from tests.imaging.documents import report_pdf


def post_files(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")


def test_multi_series_study_is_indexed_with_series_in_order(api, case_id):
    files = study_files("98892003")
    r = post_files(api, case_id, upload(files))
    assert r.status_code == 200, r.json
    assert r.json["rejected"] == []
    assert len(r.json["accepted"]) == len(files) == 17
    case = api.get(f"/api/cases/{case_id}").json
    originals = [pydicom.dcmread(p) for p in files]
    assert len(case["studies"]) == len({ds.StudyInstanceUID for ds in originals})
    counts = sorted(s["instance_count"] for st in case["studies"] for s in st["series"])
    expected = sorted(
        sum(1 for ds in originals if ds.SeriesInstanceUID == uid) for uid in {ds.SeriesInstanceUID for ds in originals})
    assert counts == expected
    for study in case["studies"]:
        assert study["study_uid"].startswith("2.25.")
        assert study["modality"] == "MR"
        for series in study["series"]:
            items = api.get(f"/api/cases/{case_id}/instances?series_uid={series['series_uid']}").json["items"]
            assert len(items) == series["instance_count"]
            numbers = [i["instance_number"] for i in items]
            assert numbers == sorted(numbers)
            assert {i["series_uid"] for i in items} == {series["series_uid"]}


def test_series_sort_numerically_not_as_text(api, case_id):
    post_files(api, case_id, upload(study_files("77654033")))
    ct = next(s for st in api.get(f"/api/cases/{case_id}").json["studies"] for s in st["series"]
              if s["modality"] == "CT")
    items = api.get(f"/api/cases/{case_id}/instances?series_uid={ct['series_uid']}").json["items"]
    # 18, 180, 181, 182: numeric order, which here is also the order along the slice normal.
    assert [i["instance_number"] for i in items] == [18, 180, 181, 182]
    positions = [i["slice_position"] for i in items]
    assert positions == sorted(positions) or positions == sorted(positions, reverse=True)


def test_stored_file_is_deidentified_attribute_by_attribute(api, case_id):
    path = sample("CT_small.dcm")
    original = pydicom.dcmread(path)
    accepted = post_files(api, case_id, upload([path])).json["accepted"][0]
    r = api.get(f"/api/cases/{case_id}/instances/{accepted['sop_instance_uid']}/file")
    assert r.status_code == 200
    assert r.mimetype == "application/dicom"
    raw = r.data
    stored = read(raw)

    # Identity removed or replaced
    assert str(stored.PatientName) == stored.PatientID == f"HUIZHEN^CASE{case_id}"
    assert str(original.PatientName) not in raw.decode("latin-1")
    assert original.PatientID not in raw.decode("latin-1")
    assert stored.get("PatientBirthDate", "") == ""
    assert stored.get("StudyDate", "") == ""
    assert stored.get("AccessionNumber", "") == ""
    for removed in ("InstitutionName", "StudyDescription", "SeriesDescription", "OperatorsName",
                    "PatientAge", "PatientWeight", "AcquisitionDate", "ContentTime"):
        if removed == "ContentTime":
            assert stored.get(removed, "") == ""
        else:
            assert removed not in stored, removed
    assert not any(elem.tag.is_private for elem in stored.iterall())
    assert stored.PatientIdentityRemoved == "YES"
    assert "113100" in [item.CodeValue for item in stored.DeidentificationMethodCodeSequence]
    assert stored.DeidentificationMethod

    # UIDs replaced, consistently with the index and the file meta, standard UIDs kept
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        if name in original:
            assert stored[name].value != original[name].value
            assert stored[name].value.startswith("2.25.")
            assert original[name].value not in raw.decode("latin-1")
    assert stored.SOPInstanceUID == accepted["sop_instance_uid"]
    assert stored.SeriesInstanceUID == accepted["series_uid"]
    assert stored.StudyInstanceUID == accepted["study_uid"]
    assert stored.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID
    assert stored.SOPClassUID == original.SOPClassUID
    assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID

    # Pixels bit-exact; the image attributes unchanged
    assert stored.PixelData == original.PixelData
    for name in ("Rows", "Columns", "BitsAllocated", "PixelRepresentation", "Modality", "PixelSpacing",
                 "ImagePositionPatient", "RescaleSlope", "RescaleIntercept", "InstanceNumber"):
        assert stored.get(name) == original.get(name), name


def test_uids_are_consistent_within_a_case_and_differ_between_cases(api, case_id, make_case, owner):
    files = study_files("98892001")
    first = post_files(api, case_id, upload(files[:3])).json["accepted"]
    second = post_files(api, case_id, upload(files[3:])).json["accepted"]
    assert len({a["study_uid"] for a in first + second}) == 1
    case = api.get(f"/api/cases/{case_id}").json
    assert len(case["studies"]) == 1
    assert sum(s["instance_count"] for s in case["studies"][0]["series"]) == len(files)

    other = make_case(owner)
    again = post_files(api, other, upload(files[:1])).json["accepted"][0]
    assert again["study_uid"] != first[0]["study_uid"]


def test_same_instance_twice_is_stored_once(app, api, case_id):
    path = sample("MR_small.dcm")
    first = post_files(api, case_id, upload([path])).json["accepted"][0]
    again = post_files(api, case_id, upload([path, path])).json["accepted"]
    assert first["duplicate"] is False
    assert [a["duplicate"] for a in again] == [True, True]
    assert {a["sop_instance_uid"] for a in again} == {first["sop_instance_uid"]}
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1
    stored = list(Path(app.config["UPLOAD_FOLDER"]).rglob("*.dcm"))
    assert len(stored) == 1


def _without(path: Path, keyword: str) -> bytes:
    ds = pydicom.dcmread(path)
    delattr(ds, keyword)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_bad_files_are_rejected_one_by_one_and_good_ones_kept(api, case_id):
    good = sample("CT_small.dcm")
    files = upload([good]) + [
        (io.BytesIO(sample("MR_truncated.dcm").read_bytes()), "MR_truncated.dcm"),
        (io.BytesIO(b"\x00\x01" * 500), "slide.jpg"),
        (io.BytesIO(b""), "empty.dcm"),
        (io.BytesIO(_without(sample("MR_small.dcm"), "SOPInstanceUID")), "no-sop.dcm"),
        (io.BytesIO((DICOMDIR_TESTS / "DICOMDIR").read_bytes()), "DICOMDIR"),
        (io.BytesIO(b"%PDF-1.4\n1 0 obj\n"), "cut.pdf"),
    ]
    r = post_files(api, case_id, files)
    assert r.status_code == 200
    assert [a["filename"] for a in r.json["accepted"]] == ["CT_small.dcm"]
    reasons = {x["filename"]: x["error"] for x in r.json["rejected"]}
    assert reasons["MR_truncated.dcm"].startswith("truncated pixel data")
    assert reasons["slide.jpg"].startswith("unsupported file type")
    assert reasons["empty.dcm"] == "empty file"
    assert reasons["no-sop.dcm"] == "missing required attribute: SOPInstanceUID"
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert reasons["cut.pdf"].startswith("incomplete PDF")
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1


def test_valid_dicom_that_cannot_be_rendered_is_stored_and_says_so(api, case_id):
    accepted = post_files(api, case_id, upload([sample("rtplan.dcm")])).json["accepted"][0]
    assert accepted["renderable"] is False
    assert accepted["render_error"] == "no pixel data (not an image object)"
    sop = accepted["sop_instance_uid"]
    assert api.get(f"/api/cases/{case_id}/instances/{sop}/file").status_code == 200
    r = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered")
    assert r.status_code == 422
    assert r.json == {"error": "instance cannot be rendered", "detail": "no pixel data (not an image object)"}


def test_zip_of_a_study_is_one_upload(api, case_id):
    files = study_files("98892001")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in files:
            z.write(p, f"CD/DICOM/{p.parent.name}/{p.name}")
        z.writestr("CD/README.TXT", "autorun")
        z.writestr("__MACOSX/._x", "junk")
    buf.seek(0)
    r = post_files(api, case_id, [(buf, "study.zip")])
    assert r.status_code == 200
    assert len(r.json["accepted"]) == len(files)
    assert [x["filename"] for x in r.json["rejected"]] == ["study.zip/CD/README.TXT", "study.zip/__MACOSX/._x"]
    assert all(a["filename"].startswith("study.zip/CD/DICOM/") for a in r.json["accepted"])


def test_damaged_zip_is_rejected_with_reason(api, case_id):
    r = post_files(api, case_id, [(io.BytesIO(b"PK\x03\x04broken"), "study.zip")])
    assert r.json["rejected"] == [{"filename": "study.zip", "error": "damaged ZIP archive"}]


def test_upload_over_the_size_limit_is_413_and_records_nothing(app, api, case_id):
    app.config["MAX_CONTENT_LENGTH"] = 20_000
    r = post_files(api, case_id, upload([sample("CT_small.dcm")]))
    assert r.status_code == 413
    assert "upload limit" in r.json["detail"]
    app.config["MAX_CONTENT_LENGTH"] = 10_000_000
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []


def test_upload_without_files_is_a_clear_400(api, case_id):
    r = api.post(f"/api/cases/{case_id}/files", data={}, content_type="multipart/form-data")
    assert r.status_code == 400
    assert "files" in r.json["error"]


def test_object_keys_carry_no_patient_data(app, api, case_id):
    post_files(api, case_id, upload([sample("CT_small.dcm")], names=["张三_CT.dcm"]))
    root = Path(app.config["UPLOAD_FOLDER"])
    keys = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert len(keys) == 1
    assert keys[0].startswith(f"cases/{case_id}/dicom/")
    assert "张三" not in keys[0]
    assert "CT" not in keys[0]


def test_upload_cut_off_half_way_records_nothing_and_leaves_no_objects(app, api, case_id):
    import requests

    files = study_files("98892001")
    multipart = [("files", (p.name, p.read_bytes())) for p in files]
    prepared = requests.Request("POST", "http://x/", files=multipart).prepare()
    cut = prepared.body[: len(prepared.body) * 2 // 3]  # the connection dropped two thirds of the way
    r = api.post(f"/api/cases/{case_id}/files", data=cut, content_type=prepared.headers["Content-Type"])
    assert r.status_code == 400
    assert r.json["error"] == "the upload ended before its last file was complete"
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []
    assert api.get(f"/api/cases/{case_id}").json["studies"] == []
    root = Path(app.config["UPLOAD_FOLDER"])
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_a_file_whose_pixel_spacing_is_infinite_is_kept_without_one(api, case_id):
    """``inf`` once reached the instance list as ``Infinity``: JSON no browser parses, so the list failed."""
    import json
    import warnings

    ds = read(sample("CT_small.dcm").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that inf is no valid DS
        ds.PixelSpacing = ["inf", "inf"]
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    r = post_files(api, case_id, [(io.BytesIO(out.getvalue()), "inf.dcm")])
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 1
    listing = api.get(f"/api/cases/{case_id}/instances")
    assert listing.status_code == 200

    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    items = json.loads(listing.data, parse_constant=refuse)["items"]
    assert [item["pixel_spacing"] for item in items] == [None]


def test_a_file_whose_pixel_spacing_is_one_value_is_kept_without_one(api, case_id):
    """pydicom reads a one-valued PixelSpacing as a number, not a list: the upload failed with a TypeError."""
    ds = read(sample("CT_small.dcm").read_bytes())
    ds.PixelSpacing = ["0.5"]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    r = post_files(api, case_id, [(io.BytesIO(out.getvalue()), "one.dcm")])
    assert r.status_code == 200, r.json
    assert r.json["rejected"] == []
    assert [item["pixel_spacing"] for item in api.get(f"/api/cases/{case_id}/instances").json["items"]] == [None]


def test_an_encapsulated_pdf_without_the_preamble_is_deidentified_as_dicom(api, case_id):
    """Its "%PDF-" lies within the first KB: it was taken for a PDF and stored with the patient's data."""
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF Storage
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5.1", "1.2.3.4", "1.2.3.4.5"
    ds.Modality, ds.PatientName, ds.PatientID, ds.PatientBirthDate = "DOC", "ZHANG^SAN", "MRN123456", "19720304"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = _even(report_pdf())
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)  # no preamble, no file meta: as some CD exports write them
    data = out.getvalue()
    assert data.find(b"%PDF-") < 1024

    r = post_files(api, case_id, [(io.BytesIO(data), "report.dcm")])
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 1, r.json
    assert r.json["accepted"][0].get("kind", "dicom") == "dicom", r.json
    sop = r.json["accepted"][0]["sop_instance_uid"]
    stored = api.get(f"/api/cases/{case_id}/instances/{sop}/file").data
    for identifier in (b"ZHANG^SAN", b"MRN123456", b"19720304"):
        assert identifier not in stored


def _even(value: bytes) -> bytes:
    return value + b"\x00" * (len(value) % 2)


def _encapsulated(document: bytes, mime: str) -> bytes:
    """A Part 10 Encapsulated PDF (or CDA) Storage file, as a PACS sends a scanned report."""
    from pydicom.dataset import FileMetaDataset

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = ("1.2.840.10008.5.1.4.1.1.104.1" if mime == "application/pdf"
                      else "1.2.840.10008.5.1.4.1.1.104.2")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.7"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
    ds.Modality, ds.PatientName, ds.PatientID = "DOC", "ZHANG^SAN", "MRN123456"
    ds.MIMETypeOfEncapsulatedDocument = mime
    ds.EncapsulatedDocument = _even(document)
    ds.EncapsulatedDocumentLength = len(document)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_an_encapsulated_pdf_keeps_only_its_pages(api, case_id):
    """The PDF inside is cleaned as an uploaded one is: the name in its title, XMP and attachment goes."""
    from pypdf import PdfReader

    original = report_pdf(pages=2, patient="ZHANG SAN")
    r = post_files(api, case_id, [(io.BytesIO(_encapsulated(original, "application/pdf")), "report.dcm")])
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 1, r.json
    stored = api.get(f"/api/cases/{case_id}/instances/{r.json['accepted'][0]['sop_instance_uid']}/file").data
    assert b"ZHANG" not in stored
    ds = pydicom.dcmread(io.BytesIO(stored))
    document = bytes(ds.EncapsulatedDocument)
    assert ds.EncapsulatedDocumentLength in (len(document), len(document) - 1)
    served, source = PdfReader(io.BytesIO(document)), PdfReader(io.BytesIO(original))
    assert served.metadata is None
    assert served.attachments == {}
    assert [p.extract_text() for p in served.pages] == [p.extract_text() for p in source.pages]


def test_an_encapsulated_cda_is_refused(api, case_id):
    cda = b'<?xml version="1.0"?><ClinicalDocument><recordTarget><patientRole><patient><name>ZHANG SAN</name>'
    r = post_files(api, case_id, [(io.BytesIO(_encapsulated(cda + b"</patient></patientRole></recordTarget>"
                                                            b"</ClinicalDocument>", "text/XML")), "cda.dcm")])
    assert r.json["accepted"] == []
    assert r.json["rejected"][0]["error"].startswith("encapsulated CDA document: its header names the patient")
    assert api.get(f"/api/cases/{case_id}").json["studies"] == []
