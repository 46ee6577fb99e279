"""The de-identified file written as new header + copied spans equals pydicom writing the whole dataset."""

import io

import pydicom
import pytest

from app.imaging import dicom, ingest
from app.imaging.deid import deidentify
from tests.imaging.dicom_samples import sample

SECRET, PSEUDONYM = "case-secret", "HUIZHEN^CASE7"
LIMITS = {"max_frame_pixels": 64_000_000, "max_decoded_bytes": 2**31}


def bare(name: str) -> bytes:
    """The test file as old modalities write it: implicit VR little endian, no preamble, no file meta."""
    ds = pydicom.dcmread(sample(name))
    del ds.file_meta
    ds.preamble = None
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True)
    return out.getvalue()


def both_ways(name: str, *, force: bool = False) -> tuple[list | None, bytes, bytes]:
    """De-identify a test file twice: (layout pieces, their assembled bytes, pydicom's whole-dataset bytes)."""
    data = bare(name) if force else sample(name).read_bytes()
    starts: dict[int, int] = {}
    fast = dicom.read_dataset(io.BytesIO(data), force=force, starts=starts)
    full = dicom.read_dataset(io.BytesIO(data), force=force)
    for ds in (fast, full):
        if force:
            ds.ensure_file_meta()
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    changed: set[int] = set()
    assert deidentify(fast, secret=SECRET, pseudonym=PSEUDONYM, changed=changed) == \
        deidentify(full, secret=SECRET, pseudonym=PSEUDONYM)
    pieces = dicom.layout(fast, source=data, starts=starts, changed=changed)
    assembled = dicom.assemble(pieces, data) if pieces is not None else b""
    return pieces, assembled, dicom.serialise(full).getvalue()


@pytest.mark.parametrize("name", [
    "CT_small.dcm",  # explicit VR little endian, many private tags removed
    "MR_small_implicit.dcm",  # implicit VR little endian
    "JPEG2000.dcm",  # encapsulated (compressed) pixel data
    "JPEG-lossy.dcm",  # encapsulated, baseline JPEG
    "JPEG2000-embedded-sequence-delimiter.dcm",  # a delimiter's bytes inside a fragment
    "SC_rgb_rle.dcm",  # encapsulated RLE
    "rtplan.dcm",  # nested sequences with UIDs, no pixel data
    "MR_small_jpeg_ls_lossless.dcm",  # encapsulated JPEG-LS
    "SC_rgb_rle_2frame.dcm",  # multi-frame encapsulated
])
def test_layout_writes_the_same_bytes_as_pydicom(name):
    pieces, assembled, full = both_ways(name)
    assert pieces is not None
    assert assembled == full
    # The pixel data is a span of the upload, not new bytes: it is copied through, once.
    original = pydicom.dcmread(sample(name))
    if "PixelData" in original:
        encoded = sum(len(p) for p in pieces if isinstance(p, bytes))
        assert encoded + len(original.PixelData) <= len(full)


def test_layout_of_a_file_whose_encapsulated_pixels_pydicom_rewrites_is_the_same_dataset():
    # pydicom re-encodes this file's RLE fragments slightly differently; the data set is the same.
    pieces, assembled, full = both_ways("rtdose_rle.dcm")
    assert pieces is not None
    a, b = pydicom.dcmread(io.BytesIO(assembled)), pydicom.dcmread(io.BytesIO(full))
    assert a == b
    assert a.file_meta == b.file_meta
    assert a.PixelData == pydicom.dcmread(sample("rtdose_rle.dcm")).PixelData


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "image_dfl.dcm", "MR_truncated.dcm"])
def test_big_endian_deflated_and_trailing_bytes_are_left_to_pydicom(name):
    pieces, _, _ = both_ways(name)
    assert pieces is None


def test_file_without_preamble_or_meta_is_laid_out_too():
    pieces, assembled, full = both_ways("CT_small.dcm", force=True)
    assert pieces is not None
    assert assembled == full


@pytest.mark.parametrize(("name", "force"), [
    ("CT_small.dcm", False), ("MR_small_implicit.dcm", False), ("JPEG2000.dcm", False),
    ("MR_small_bigendian.dcm", False), ("image_dfl.dcm", False), ("MR_small.dcm", True),
])
def test_prepared_file_is_a_valid_deidentified_dicom_with_byte_identical_pixels(name, force):
    source = bare(name) if force else sample(name).read_bytes()
    result = ingest.prepare_dicom(source, force=force, secret=SECRET, pseudonym=PSEUDONYM, **LIMITS)
    out = pydicom.dcmread(io.BytesIO(dicom.assemble(result.pieces, source)))
    original = pydicom.dcmread(io.BytesIO(source), force=force)
    assert out.PatientIdentityRemoved == "YES"
    assert out.PatientName == PSEUDONYM
    assert out.SOPInstanceUID == result.uid_map[original.SOPInstanceUID] == result.facts.sop_instance_uid
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert not any(elem.tag.is_private for elem in out)
    assert out.preamble == b"\0" * 128
    if "PixelData" in original:
        assert out.PixelData == original.PixelData
