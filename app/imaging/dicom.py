"""Reading, validating and indexing one DICOM file."""

import io
import math
import struct
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from flask import current_app
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.pixels import get_decoder
from pydicom.uid import UID

MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"  # DICOMDIR
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
RENDERABLE_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT",
                          "YBR_RCT", "PALETTE COLOR"}


class RejectedFile(Exception):
    """A file that cannot be accepted; the message is the per-file reason shown to the user."""


def looks_like_dicom(head: bytes) -> bool:
    """Tell from the first 132 bytes whether a file has the DICOM Part 10 preamble."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def looks_like_bare_dicom(head: bytes) -> bool:
    """Tell whether a file without the preamble starts with a plausible first DICOM element.

    Such files (old modalities, some CD exports) begin with a File Meta (0002,xxxx) or an
    Identifying (0008,xxxx) element, little endian, in explicit VR or implicit VR.
    """
    if len(head) < 8:
        return False
    group, _elem = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008):
        return False
    if head[4:6].isalpha() and head[4:6].isupper():
        return head[4:6].decode("ascii") in _VRS
    (length,) = struct.unpack("<I", head[4:8])
    return length % 2 == 0 and length < 0x10000


_VRS = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
        "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"}


def _ascending_tags():
    """Return a stop_when callback that rejects a dataset whose top-level tags do not ascend.

    DICOM requires ascending tags; garbage (runs of zeros above all) parses as endless
    (0000,0000) elements at about 0.5 s per MB, so it is refused at its first element instead.
    """
    last = -1

    def check(tag, _vr, _length) -> bool:
        nonlocal last
        if tag <= last:
            raise RejectedFile(f"not a DICOM file: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) out of order")
        last = tag
        return False

    return check


def read_dataset(stream: BinaryIO, *, force: bool = False) -> Dataset:
    """Parse a DICOM file (Part 10, or without the preamble when forced), or raise RejectedFile with the reason."""
    try:
        ds = read_partial(stream, stop_when=_ascending_tags(), force=force)
    except InvalidDicomError as exc:
        raise RejectedFile("not a DICOM file") from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise RejectedFile(f"unreadable DICOM file: {type(exc).__name__}") from exc
    return ds


def validate(ds: Dataset) -> None:
    """Raise RejectedFile if the dataset cannot be indexed or its pixel data is incomplete."""
    if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY_SOP_CLASS or \
            str(ds.get("SOPClassUID", "")) == MEDIA_DIRECTORY_SOP_CLASS:
        raise RejectedFile("DICOMDIR is a media index, not an image; skipped")
    missing = [name for name in REQUIRED_UIDS if not str(ds.get(name, "")).strip()]
    if missing:
        raise RejectedFile(f"missing required attribute: {', '.join(missing)}")
    if "PixelData" in ds:
        check_decoded_size(ds, frames=frames_of(ds), max_frame_pixels=current_app.config["MAX_FRAME_PIXELS"],
                           max_bytes=current_app.config["MAX_DECODED_MB"] * 1024 * 1024)
        _check_pixel_data(ds)


def check_decoded_size(ds: Dataset, *, frames: int, max_frame_pixels: int, max_bytes: int) -> None:
    """Raise RejectedFile if decoding `frames` frames of ds would pass the limits (read from the header only)."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise RejectedFile("pixel data without valid Rows/Columns/BitsAllocated") from exc
    problem = frame_size_problem(rows, cols, max_frame_pixels)
    if problem:
        raise RejectedFile(problem)
    decoded = rows * cols * samples * ((bits + 7) // 8) * frames
    if decoded > max_bytes:
        raise RejectedFile(f"image too large: {decoded / 2**20:.0f} MB once decoded,"
                           f" at most {max_bytes / 2**20:.0f} MB")


def frame_size_problem(rows: int | None, cols: int | None, max_frame_pixels: int) -> str | None:
    """Return why a frame of rows × cols is too large to decode, or None."""
    if (rows or 0) * (cols or 0) > max_frame_pixels:
        return f"frame too large: {cols}×{rows} pixels, at most {max_frame_pixels / 1e6:g} megapixels"
    return None


def _check_pixel_data(ds: Dataset) -> None:
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))
    if ts.is_encapsulated:
        try:
            frames = sum(1 for _ in pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=frames_of(ds)))
        except (ValueError, KeyError, EOFError, TypeError) as exc:
            raise RejectedFile(f"corrupt encapsulated pixel data: {exc}") from exc
        if frames < frames_of(ds):
            raise RejectedFile(f"truncated pixel data: {frames} of {frames_of(ds)} frames present")
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits, samples = int(ds.BitsAllocated), int(ds.get("SamplesPerPixel", 1))
    except (AttributeError, TypeError, ValueError) as exc:
        raise RejectedFile("pixel data without valid Rows/Columns/BitsAllocated") from exc
    expected = rows * cols * samples * frames_of(ds) * bits
    expected = (expected + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise RejectedFile(f"truncated pixel data: expected {expected} bytes, found {actual}")


def frames_of(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


@dataclass
class IndexFacts:
    """What the index keeps about an instance (all taken after de-identification)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    body_part: str
    series_number: int | None
    instance_number: int | None
    slice_position: float | None
    frames: int
    rows: int | None
    columns: int | None
    pixel_spacing: str | None
    photometric: str | None
    render_error: str | None
    burned_in_annotation: bool


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _slice_position(ds: Dataset) -> float | None:
    """Distance of the slice along the normal of its orientation, for ordering a series."""
    try:
        pos = [float(v) for v in ds.ImagePositionPatient]
        ori = [float(v) for v in ds.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    if len(pos) != 3 or len(ori) != 6:
        return None
    r, c = ori[:3], ori[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    position = sum(p * n for p, n in zip(pos, normal, strict=True))
    return position if math.isfinite(position) else None


def render_problem(ds: Dataset) -> str | None:
    """Return why the instance cannot be rendered, or None if it can."""
    if "PixelData" not in ds:
        return "no pixel data (not an image object)"
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in RENDERABLE_PHOTOMETRIC:
        return f"unsupported photometric interpretation {photometric or '(none)'}"
    ts = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, ValueError):
        return f"no decoder for transfer syntax {UID(ts).name}"
    if not decoder.is_available:
        return f"no decoder installed for transfer syntax {UID(ts).name}"
    return None


def index_facts(ds: Dataset) -> IndexFacts:
    """Collect the index fields of a (de-identified) dataset."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return IndexFacts(
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        transfer_syntax_uid=str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")),
        modality=str(ds.get("Modality", "") or "")[:16],
        body_part=str(ds.get("BodyPartExamined", "") or "")[:64],
        series_number=_int(ds.get("SeriesNumber")),
        instance_number=_int(ds.get("InstanceNumber")),
        slice_position=_slice_position(ds),
        frames=frames_of(ds),
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        pixel_spacing="\\".join(str(float(v)) for v in spacing) if spacing else None,
        photometric=str(ds.get("PhotometricInterpretation", "") or "") or None,
        render_error=render_problem(ds),
        burned_in_annotation=str(ds.get("BurnedInAnnotation", "")).upper() == "YES",
    )


UID_MAX = 64
CODE_STRING_MAX = 16
INT_RANGE = (-(2**31), 2**31 - 1)  # the index's integer columns


def check_index_fits(facts: IndexFacts, uid_map: dict[str, str]) -> None:
    """Raise RejectedFile unless every value the index keeps fits its column (VR lengths of PS3.5 6.2)."""
    uids = [("UID", old) for old in uid_map] + [
        ("SOPClassUID", facts.sop_class_uid), ("TransferSyntaxUID", facts.transfer_syntax_uid)]
    for name, value in uids:
        if len(value) > UID_MAX:
            raise RejectedFile(f"invalid {name}: {len(value)} characters, at most {UID_MAX}")
    if facts.photometric and len(facts.photometric) > CODE_STRING_MAX:
        raise RejectedFile(f"invalid PhotometricInterpretation: {len(facts.photometric)} characters,"
                           f" at most {CODE_STRING_MAX}")
    if facts.pixel_spacing and len(facts.pixel_spacing) > 64:
        raise RejectedFile("invalid PixelSpacing: more than two values")
    for name in ("series_number", "instance_number", "frames", "rows", "columns"):
        value = getattr(facts, name)
        if value is not None and not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise RejectedFile(f"invalid {name}: {value} is out of range")


def serialise(ds: Dataset) -> io.BytesIO:
    """Write the dataset as a DICOM Part 10 file (pixel data bytes unchanged)."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    out.seek(0)
    return out
