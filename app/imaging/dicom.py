"""Reading, validating and indexing one DICOM file."""

import io
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from flask import current_app
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_partial
from pydicom.filewriter import write_data_element, write_file_meta_info
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
        return head[4:6].decode("ascii") in EXPLICIT_VRS
    (length,) = struct.unpack("<I", head[4:8])
    return length % 2 == 0 and length < 0x10000


EXPLICIT_VRS = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
        "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"}


# Explicit VRs whose element header has a 4-byte length after 2 reserved bytes (PS3.5 7.1.2).
LONG_HEADER_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _ascending_tags(stream: BinaryIO, starts: dict[int, int] | None):
    """Return a stop_when callback that rejects a dataset whose top-level tags do not ascend.

    DICOM requires ascending tags; garbage (runs of zeros above all) parses as endless
    (0000,0000) elements at about 0.5 s per MB, so it is refused at its first element instead.
    The callback runs right after each top-level element header is read, so it also records in
    ``starts`` where each element begins in the stream (for ``layout``).
    """
    last, seen = -1, 0

    def check(tag, vr, _length) -> bool:
        nonlocal last, seen
        tag = int(tag)  # pydicom's BaseTag compares in Python; plain ints compare in C
        seen += 1
        # A dataset in another VR encoding than its transfer syntax says (implicit under an
        # explicit UID, or the reverse) is shown here twice at its first element: once while
        # pydicom probes the encoding, then again when it reads that element.
        if tag < last or (tag == last and seen != 2):
            raise RejectedFile(f"not a DICOM file: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) out of order")
        last = tag
        if starts is not None:
            starts[tag] = stream.tell() - (12 if vr in LONG_HEADER_VRS else 8)
        return False

    return check


def read_dataset(stream: BinaryIO, *, force: bool = False, starts: dict[int, int] | None = None) -> Dataset:
    """Parse a DICOM file (Part 10, or without the preamble when forced), or raise RejectedFile with the reason.

    If ``starts`` is given, it receives the offset in the stream of each top-level element.
    """
    try:
        ds = read_partial(stream, stop_when=_ascending_tags(stream, starts), force=force)
    except InvalidDicomError as exc:
        raise RejectedFile("not a DICOM file") from exc
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        # Not chained: pydicom's messages quote values, which may be patient data.
        raise RejectedFile(f"unreadable DICOM file: {type(exc).__name__}") from None
    _note_the_encoding_read(ds)
    return ds


def _note_the_encoding_read(ds: Dataset) -> None:
    """Record the VR encoding the dataset was read in, where its transfer syntax names the other one.

    pydicom reads a mislabelled dataset (implicit VR under an explicit UID, or the reverse) in
    the encoding it finds, but records the transfer syntax's as the original; layout and
    serialise must know the truth, or the file would be written in a mix of the two.
    """
    for tag in ds.keys():  # noqa: SIM118 - iterating ds itself would decode every element
        elem = ds.get_item(tag)
        if isinstance(elem, RawDataElement):
            implicit, little_endian = ds.original_encoding
            if implicit is not None and elem.is_implicit_VR != implicit:
                ds.set_original_encoding(elem.is_implicit_VR, little_endian, ds.original_character_set)
            return


def validate(ds: Dataset, *, max_frame_pixels: int | None = None, max_decoded_bytes: int | None = None) -> None:
    """Raise RejectedFile if the dataset cannot be indexed or its pixel data is incomplete.

    The limits default to the app's MAX_FRAME_PIXELS and MAX_DECODED_MB (worker processes,
    which have no app, pass them).
    """
    if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY_SOP_CLASS or \
            str(ds.get("SOPClassUID", "")) == MEDIA_DIRECTORY_SOP_CLASS:
        raise RejectedFile("DICOMDIR is a media index, not an image; skipped")
    missing = [name for name in REQUIRED_UIDS if not str(ds.get(name, "")).strip()]
    if missing:
        raise RejectedFile(f"missing required attribute: {', '.join(missing)}")
    if "PixelData" in ds:
        if max_frame_pixels is None or max_decoded_bytes is None:
            max_frame_pixels, max_decoded_bytes = decode_limits()
        check_decoded_size(ds, frames=frames_of(ds), max_frame_pixels=max_frame_pixels, max_bytes=max_decoded_bytes)
        _check_pixel_data(ds)


def decode_limits() -> tuple[int, int]:
    """Return the app's (pixels per frame, decoded bytes per instance) limits."""
    return current_app.config["MAX_FRAME_PIXELS"], current_app.config["MAX_DECODED_MB"] * 1024 * 1024


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
    return render_problem_of(has_pixels="PixelData" in ds,
                             photometric=str(ds.get("PhotometricInterpretation", "")).strip(),
                             ts=str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))


def render_problem_of(*, has_pixels: bool, photometric: str, ts: str) -> str | None:
    """render_problem from the three facts it reads (pixel data present, photometric, transfer syntax)."""
    if not has_pixels:
        return "no pixel data (not an image object)"
    if photometric not in RENDERABLE_PHOTOMETRIC:
        return f"unsupported photometric interpretation {photometric or '(none)'}"
    try:
        decoder = get_decoder(ts)
    except (NotImplementedError, ValueError):
        return f"no decoder for transfer syntax {UID(ts).name}"
    if not decoder.is_available:
        return f"no decoder installed for transfer syntax {UID(ts).name}"
    return None


def spacing_text(values) -> str | None:
    """A pixel spacing as the index keeps it, or None unless every value is a finite, positive size in mm.

    ``inf`` or ``nan`` would reach the instance list as JSON no browser parses, and measurements in
    mm as infinite lengths: such a file is kept, without a spacing, as one that has none. So is one
    whose spacing is a single value (pydicom gives a number, not a list): which axis it measures is
    unknown (an upload of one failed with a TypeError).
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        return None
    floats = [float(v) for v in values]
    if not all(math.isfinite(v) and v > 0 for v in floats):
        return None
    return "\\".join(str(v) for v in floats)


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
        pixel_spacing=spacing_text(spacing) if spacing else None,
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
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if ds.original_encoding[0] and ts.is_transfer_syntax and not ts.is_implicit_VR:
        # Read as implicit VR under an explicit transfer syntax (a mislabelled file): its raw
        # elements have no VR to write until decoded, which walking the dataset does.
        ds.walk(lambda _ds, _elem: None)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    out.seek(0)
    return out


# A piece of a file being written: new bytes, or a (start, end) span copied from the source file.
Piece = bytes | tuple[int, int]


def layout(ds: Dataset, *, source: bytes, starts: dict[int, int], changed: set[int]) -> list[Piece] | None:
    """Lay out ds, read from ``source`` with ``starts``, as a Part 10 file whose ``changed`` elements are new.

    Every other element (above all the pixel data) is copied from the source as a span, runs of
    them as one span; only the file meta and the changed elements are encoded. The bytes are
    those ``serialise`` writes, for a fraction of its time (pydicom's writer costs ~20 µs per
    element, and copies the pixel data). Return None when the dataset must be re-encoded whole
    (deflated or big-endian transfer syntax, an encoding other than the one it was read in, or
    offsets that do not point at their elements).
    """
    meta = ds.file_meta
    ts = UID(str(meta.get("TransferSyntaxUID", "")))
    if not ts.is_transfer_syntax or ts.is_deflated or not ts.is_little_endian or \
            ds.original_encoding != (ts.is_implicit_VR, True):
        return None
    # What save_as(enforce_file_format=True) does to the file meta, in place (ds is ours to change).
    if ds.get("SOPClassUID") and meta.get("MediaStorageSOPClassUID") != ds.SOPClassUID:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if ds.get("SOPInstanceUID") and meta.get("MediaStorageSOPInstanceUID") != ds.SOPInstanceUID:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    head = DicomBytesIO()
    head.is_implicit_VR, head.is_little_endian = False, True
    head.write(ds.preamble or b"\x00" * 128)
    head.write(b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    if starts and not _ends_the_file(source, max(starts.values()), implicit=ts.is_implicit_VR):
        return None
    ends = dict(zip(sorted(starts), [*sorted(starts.values())[1:], len(source)], strict=True))
    pieces: list[Piece] = []
    new = DicomBytesIO()
    new.is_implicit_VR, new.is_little_endian = ts.is_implicit_VR, True
    encoding = ds.get("SpecificCharacterSet", pydicom.charset.default_encoding)
    for tag in sorted(map(int, ds.keys())):  # plain ints: BaseTag hashes and compares in Python
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths: pydicom's writer drops them too
        if tag in starts and tag not in changed:
            if struct.unpack_from("<HH", source, starts[tag]) != (tag >> 16, tag & 0xFFFF):
                return None
            if new.tell():
                pieces.append(new.getvalue())
                new = DicomBytesIO()
                new.is_implicit_VR, new.is_little_endian = ts.is_implicit_VR, True
            span = (starts[tag], ends[tag])
            if pieces and isinstance(pieces[-1], tuple) and pieces[-1][1] == span[0]:
                span = (pieces.pop()[0], span[1])
            pieces.append(span)
        else:
            write_data_element(new, ds[tag], encoding)
    if new.tell():
        pieces.append(new.getvalue())
    return [head.getvalue(), *pieces]


_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _ends_the_file(source: bytes, start: int, *, implicit: bool) -> bool:
    """Tell whether the element at start ends exactly where the source does (no trailing bytes pydicom skipped)."""
    if implicit:
        header, (length,) = 8, struct.unpack_from("<I", source, start + 4)
    elif source[start + 4:start + 6].decode("latin-1") in LONG_HEADER_VRS:
        header, (length,) = 12, struct.unpack_from("<I", source, start + 8)
    else:
        header, (length,) = 8, struct.unpack_from("<H", source, start + 6)
    if length == 0xFFFFFFFF:
        return source.endswith(_SEQUENCE_DELIMITER)
    return start + header + length == len(source)


def assemble(pieces: list[Piece], source: bytes | memoryview) -> bytes:
    """Join a layout's pieces into the file, copying each span of the source once."""
    view = memoryview(source)
    return b"".join(p if isinstance(p, bytes) else view[p[0]:p[1]] for p in pieces)
