"""The fast path of DICOM preparation: de-identify a well-formed file by scanning its element headers.

pydicom makes an object of every element (a CT slice has about 260), and validation,
de-identification and layout each walk them again: 2–3 ms of Python per slice, the largest part of
ingest's CPU. Here one loop reads the top-level element headers with struct, decides each
element's fate from its tag (the profile's own table, ``deid.action_of``), decodes only the values
validation and the index need, and lays the file out as ``dicom.layout`` does: new bytes for the
changed elements, spans of the source for the rest (the pixel data above all).

The changed elements are still encoded by pydicom, so the bytes are the reference path's:
  * emptied (Z) and always-set elements (patient name and ID, the de-identification method) by
    ``deid.deidentify`` itself, run on a small dataset of just those elements and cached per
    series (the same tags, VRs, character set and pseudonym);
  * a kept sequence by reading that one element with pydicom and cleaning its items with
    ``deid.clean_items``;
  * the file meta from a template pydicom writes once per series, with the SOP Instance UID put in;
  * replaced UIDs here, by the UI rule (ASCII, padded with a NUL to even length).

Anything the loop does not take as plain makes ``prepare`` return None, and the caller uses the
pydicom path (``ingest.prepare_dicom``), which stays the reference: big endian,
deflate, an undefined length outside a sequence or the pixel data, a kept UN element, a
multi-valued index value, a value read here or an element the profile empties or sets in another
VR than the dictionary's, an encapsulated document (a PDF in it is rewritten), group 0000, a
value pydicom would fail to decode, and every file the reference would reject (it then gives the
reason). So does any exception raised here. Sequences of
undefined length are walked as pydicom reads them, items of defined length element by element.
A test checks that both paths give the same bytes, index facts and UID map. Implicit VR little endian
is read too, each element's VR taken from the dictionary as pydicom does.
"""

import io
import logging
import re
import struct
from collections import OrderedDict
from functools import lru_cache
from threading import Lock

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset, read_partial
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import UID

from app.imaging import deid, dicom

log = logging.getLogger(__name__)
_tag_vr = struct.Struct("<HH2s").unpack_from
_item = struct.Struct("<HHI").unpack_from
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_ui_header = struct.Struct("<HH2sH").pack
_item_header = struct.Struct("<HHI").pack

LONG_VRS = frozenset(vr.encode() for vr in dicom.LONG_HEADER_VRS)
SHORT_VRS = frozenset(vr.encode() for vr in dicom.EXPLICIT_VRS) - LONG_VRS
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
CHARSET = 0x00080005
ENCAPSULATED_DOCUMENT = 0x00420011
CODE_SEQUENCE = 0x00120064  # DeidentificationMethodCodeSequence: set whole by deidentify
MAX_DEPTH = 16  # nested sequences of undefined length

# The values validation and the index read (none of them is changed by the profile; a test checks).
SOP_CLASS, SOP_INSTANCE, STUDY, SERIES = 0x00080016, 0x00080018, 0x0020000D, 0x0020000E
MODALITY, BODY_PART, SERIES_NUMBER, INSTANCE_NUMBER = 0x00080060, 0x00180015, 0x00200011, 0x00200013
POSITION, ORIENTATION, SAMPLES, PHOTOMETRIC = 0x00200032, 0x00200037, 0x00280002, 0x00280004
FRAMES, ROWS, COLUMNS, SPACING, IMAGER_SPACING = 0x00280008, 0x00280010, 0x00280011, 0x00280030, 0x00181164
BITS_ALLOCATED, BURNED_IN, PIXEL_REPRESENTATION = 0x00280100, 0x00280301, 0x00280103
FACT_TAGS = frozenset({SOP_CLASS, SOP_INSTANCE, STUDY, SERIES, MODALITY, BODY_PART, SERIES_NUMBER,
                       INSTANCE_NUMBER, POSITION, ORIENTATION, SAMPLES, PHOTOMETRIC, FRAMES, ROWS, COLUMNS,
                       SPACING, IMAGER_SPACING, BITS_ALLOCATED, BURNED_IN, PIXEL_DATA})
# The elements whose values the reference decodes: those, the character set, and PixelRepresentation,
# which pydicom decodes when deidentify adds its code sequence (Dataset._set_pixel_representation).
READ_TAGS = FACT_TAGS | {CHARSET, PIXEL_REPRESENTATION}
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


class NotPlain(Exception):
    """The file needs the pydicom path (internal to this module)."""


def prepare(data: bytes, *, secret: str, pseudonym: str, max_frame_pixels: int,
            max_decoded_bytes: int) -> tuple[list[dicom.Piece], dicom.IndexFacts, dict[str, str]] | None:
    """Validate, de-identify and lay out a Part 10 file as ``ingest.prepare_dicom`` does, or None.

    Returns (pieces, index facts, original → new UIDs), or None when the file is not plain
    enough for this path (the caller then takes the pydicom path, which also gives any rejection).
    """
    try:
        return _prepare(data, secret, pseudonym, max_frame_pixels, max_decoded_bytes)
    except NotPlain:
        return None
    except Exception as exc:  # whatever fails here (pydicom's own errors too), the reference path decides
        # The type and the line only: a message or a traceback may quote values, which may be patient data.
        log.debug("fast path stepped aside on %s at scan.py line %d", type(exc).__name__, _line_of(exc))
        return None


def _line_of(exc: BaseException) -> int:
    """The last line of this module the exception went through."""
    line, frame = 0, exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename == __file__:
            line = frame.tb_lineno
        frame = frame.tb_next
    return line


def _prepare(data: bytes, secret: str, pseudonym: str, max_frame_pixels: int, max_decoded_bytes: int):
    if len(data) < 144 or data[128:132] != b"DICM":
        raise NotPlain
    meta, meta_end = _scan_meta(data)
    ts = _text(data, meta[0x00020010])
    if meta[0x00020010][1] != b"UI" or ts != ts.strip():
        raise NotPlain  # pydicom strips any whitespace around a UID (we would not); in another VR it is no UID
    implicit = ts == pydicom.uid.ImplicitVRLittleEndian
    if not implicit and not _explicit_little(ts):
        raise NotPlain
    elements = _scan_implicit(data, meta_end) if implicit else _scan(data, meta_end)
    if not elements:
        raise NotPlain
    at = {e[0]: e for e in elements if e[0] in READ_TAGS}
    if not implicit and any(e[1] not in READ_VRS[tag] for tag, e in at.items()):
        raise NotPlain  # pydicom decodes a value by the VR the file gives it, not by the dictionary's
    _us_fact(data, at.get(PIXEL_REPRESENTATION))  # NotPlain where pydicom would fail to decode it

    def text(tag: int) -> str:
        return _text(data, at.get(tag))

    uids = {tag: text(tag).strip() for tag in (SOP_CLASS, SOP_INSTANCE, STUDY, SERIES)}
    if any("\\" in v or not v for v in uids.values()) or dicom.MEDIA_DIRECTORY_SOP_CLASS in (
            uids[SOP_CLASS], _text(data, meta.get(0x00020002)).strip()):
        raise NotPlain
    frames = _frames(text(FRAMES))
    pixels = at.get(PIXEL_DATA)
    if pixels is not None:
        _check_pixels(data, at, pixels, ts, frames, max_frame_pixels, max_decoded_bytes)

    uid_map: dict[str, str] = {}

    def new_uid(value: str) -> str:
        if value not in uid_map:
            uid_map[value] = deid.derive_uid(secret, value)
        return uid_map[value]

    charset = data[at[CHARSET][3]:at[CHARSET][4]] if CHARSET in at else None
    new: dict[int, bytes] = {}
    emptied: list[tuple[int, str, bool]] = []  # (tag, VR, undefined length) of Z and always-set elements
    kept: list[tuple[int, int, int]] = []  # (tag, start, end) of elements copied as they are
    for tag, vr, start, value, end, undefined in elements:
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            if undefined or (vr != b"UL" and not implicit):
                raise NotPlain  # the profile cleans a group length that claims to be a UID or a sequence
            continue  # retired group lengths: pydicom's writer drops them
        if tag == ENCAPSULATED_DOCUMENT:
            raise NotPlain  # a PDF in it is rewritten (ingest.clean_encapsulated_document)
        action = deid.action_of(tag)
        if action == "X":
            continue
        if tag in deid.SET_TAGS or action in ("Z", "D"):
            if tag == CODE_SEQUENCE:
                raise NotPlain  # deidentify would first clean the old sequence's items
            if vr != dictionary_vr(tag):
                raise NotPlain  # another VR: the pseudonym may not fit it, pydicom may read it as the dictionary VR
            emptied.append((tag, vr.decode(), undefined))
        elif vr == b"UN" or (undefined and vr != b"SQ" and tag != PIXEL_DATA):
            raise NotPlain  # pydicom may read it as another VR
        elif deid.mismatched_vr(tag, vr.decode()):
            raise NotPlain  # a sequence or a UID in another VR: deidentify removes or remaps it
        elif vr == b"SQ":
            new[tag] = _clean_sequence(data, at.get(CHARSET), start, end, tag, new_uid, implicit)
        elif vr == b"UI" and (values := _uid_values(_text(data, (tag, vr, start, value, end)))) != [""]:
            replaced = deid.replace_uids(values, new_uid)
            new[tag] = _encode_ui(tag, "\\".join(replaced), implicit)
            if tag in uids:
                uids[tag] = replaced[0]
        else:
            kept.append((tag, start, end))
    present = {tag for tag, _, _ in emptied}
    emptied += [(tag, "", False) for tag in deid.SET_TAGS if tag not in present]
    new.update(_emptied_elements(tuple(sorted(emptied)), charset, pseudonym, implicit))

    facts = _facts(text, lambda tag: _us_fact(data, at.get(tag)), uids, ts, frames, pixels is not None)
    try:
        dicom.check_index_fits(facts, uid_map)
    except dicom.RejectedFile as exc:
        raise NotPlain from exc
    head = _meta_head(data, meta, meta_end, uids[SOP_CLASS], uids[SOP_INSTANCE])
    return [head, *_pieces(kept, new)], facts, uid_map


def _explicit_little(ts: str) -> bool:
    uid = UID(ts)
    return uid.is_transfer_syntax and not uid.is_implicit_VR and uid.is_little_endian and not uid.is_deflated


def _text(data: bytes, element) -> str:
    """A string value as pydicom decodes one (default encoding, trailing spaces and NULs dropped); "" if absent."""
    if element is None:
        return ""
    return data[element[3]:element[4]].decode("latin-1").rstrip(" \x00")


def _uid_values(text: str) -> list[str]:
    """A UI value's UIDs as pydicom reads them: each stripped of the whitespace around it."""
    return [uid.strip() for uid in text.split("\\")]


def _header(data: bytes, pos: int, n: int, implicit: bool = False) -> tuple[int, bytes, int, int]:
    """(tag, VR, value offset, length) of the little endian element header at pos (implicit VR: the dictionary's)."""
    if pos + 8 > n:
        raise NotPlain
    if implicit:
        group, element, length = _item(data, pos)
        return group << 16 | element, dictionary_vr(group << 16 | element), pos + 8, length
    group, element, vr = _tag_vr(data, pos)
    if vr in SHORT_VRS:
        return group << 16 | element, vr, pos + 8, _u16(data, pos + 6)[0]
    if vr in LONG_VRS and pos + 12 <= n:
        return group << 16 | element, vr, pos + 12, _u32(data, pos + 8)[0]
    raise NotPlain


def _scan_meta(data: bytes) -> tuple[dict[int, tuple], int]:
    """The group 2 elements after the preamble (tag → element) and where the dataset starts."""
    meta, pos, n = {}, 132, len(data)
    while pos + 8 <= n and _u16(data, pos)[0] == 2:
        tag, vr, value, length = _header(data, pos, n)
        if length == UNDEFINED or value + length > n:
            raise NotPlain
        meta[tag] = (tag, vr, pos, value, value + length)
        pos = value + length
    if 0x00020010 not in meta:
        raise NotPlain
    return meta, pos


def _scan(data: bytes, pos: int) -> list[tuple[int, bytes, int, int, int, bool]]:
    """(tag, VR, start, value offset, end, undefined length) of every top-level element to the end of the file."""
    n, last, out = len(data), -1, []
    short, tag_vr, u16, u32 = SHORT_VRS, _tag_vr, _u16, _u32  # locals: this loop runs ~260 times a file
    while pos < n:
        if pos + 12 > n:
            tag, vr, value, length = _header(data, pos, n)
        else:  # _header, inlined
            group, element, vr = tag_vr(data, pos)
            tag = group << 16 | element
            if vr in short:
                value, length = pos + 8, u16(data, pos + 6)[0]
            elif vr in LONG_VRS:
                value, length = pos + 12, u32(data, pos + 8)[0]
            else:
                raise NotPlain
        if tag <= last or tag >> 16 in (0x0000, 0x0002, 0xFFFE):
            # Out of order (the reference rejects it); meta or item tags in the dataset; group 0000,
            # which pydicom reads apart as a command set (guessing its VRs) and writes anew.
            raise NotPlain
        last = tag
        if length != UNDEFINED:
            end = value + length
            if end > n:
                raise NotPlain
        elif vr == b"SQ":
            end = _skip_items(data, value, n, 0)
        elif tag == PIXEL_DATA:
            end = _skip_fragments(data, value, n)
        else:
            raise NotPlain
        out.append((tag, vr, pos, value, end, length == UNDEFINED))
        pos = end
    return out


def _scan_implicit(data: bytes, pos: int) -> list[tuple[int, bytes, int, int, int, bool]]:
    """_scan for implicit VR little endian, with each element's VR from the dictionary."""
    if pos + 6 <= len(data) and 0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B:
        raise NotPlain  # looks explicit: pydicom reads it so
    n, last, out, item = len(data), -1, [], _item
    while pos < n:
        if pos + 8 > n:
            raise NotPlain
        group, element, length = item(data, pos)
        tag = group << 16 | element
        if tag <= last or group in (0x0000, 0x0002, 0xFFFE):
            raise NotPlain
        last = tag
        value = pos + 8
        if length != UNDEFINED:
            end = value + length
            if end > n:
                raise NotPlain
        elif dictionary_vr(tag) in (b"SQ", b""):  # a sequence, or an unknown tag whose items follow
            end = _skip_items(data, value, n, 0, implicit=True)
        else:
            raise NotPlain  # pydicom reads the value up to the first sequence delimiter, nested or not
        out.append((tag, dictionary_vr(tag), pos, value, end, length == UNDEFINED))
        pos = end
    return out


@lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> bytes:
    """The dictionary's VR of a tag as bytes; b"" if unknown, b"??" if ambiguous ("US or SS")."""
    try:
        vr = pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return b""
    return b"??" if len(vr) != 2 else vr.encode()


# The VRs in which this module reads each value it decodes (the dictionary's; the pixel data's two).
READ_VRS = {tag: (dictionary_vr(tag),) for tag in READ_TAGS} | {PIXEL_DATA: (b"OB", b"OW")}


def _skip_items(data: bytes, pos: int, n: int, depth: int, implicit: bool = False) -> int:
    """The end of a sequence of undefined length whose items start at pos (none may pass n)."""
    if depth > MAX_DEPTH:
        raise NotPlain
    while pos + 8 <= n:
        group, element, length = _item(data, pos)
        if group != 0xFFFE:
            raise NotPlain
        if element == 0xE0DD:
            return pos + 8
        if element != 0xE000:
            raise NotPlain
        pos += 8
        if length == UNDEFINED:
            pos = _skip_elements(data, pos, n, depth, implicit, defined=False)
        elif pos + length > n or _skip_elements(data, pos, pos + length, depth, implicit, defined=True) \
                != pos + length:
            # pydicom reads an item's elements, a nested sequence to its delimiter, until it has read
            # at least the item's length: what runs past it moves where the next item is read.
            raise NotPlain
        else:
            pos += length
    raise NotPlain


def _skip_elements(data: bytes, pos: int, n: int, depth: int, implicit: bool, defined: bool) -> int:
    """Where the elements of an item starting at pos end: at n (defined length) or past its delimiter."""
    while not defined or pos < n:
        if pos + 8 > n:
            raise NotPlain
        if _u16(data, pos)[0] == 0xFFFE:
            if defined or _item(data, pos)[1:] != (0xE00D, 0):
                raise NotPlain  # in explicit VR pydicom may read a delimiter's length as a VR and 4 more bytes
            return pos + 8
        _, vr, value, length = _header(data, pos, n, implicit)
        if length != UNDEFINED:
            pos = value + length
        elif vr == b"SQ" or (implicit and not vr):
            # Implicit VR: a sequence by the dictionary, or an unknown tag whose items follow (as
            # pydicom reads it); another VR's value would run to the first delimiter, nested or not.
            pos = _skip_items(data, value, n, depth + 1, implicit)
        else:
            raise NotPlain
    return pos


def _skip_fragments(data: bytes, pos: int, n: int) -> int:
    """The end of encapsulated pixel data whose items start at pos."""
    while pos + 8 <= n:
        group, element, length = _item(data, pos)
        if group != 0xFFFE or length == UNDEFINED:
            raise NotPlain
        if element == 0xE0DD:
            return pos + 8
        if element != 0xE000:
            raise NotPlain
        pos += 8 + length
    raise NotPlain


def _us(data: bytes, element, default: int | None = None) -> int:
    """A single US value (the pixel module's), or NotPlain when absent (without default), empty or multi-valued."""
    if element is None and default is not None:
        return default
    if element is None or element[1] != b"US" or element[4] - element[3] != 2:
        raise NotPlain
    return _u16(data, element[3])[0]


def _frames(value: str) -> int:
    """dicom.frames_of from the NumberOfFrames string."""
    if not value:
        return 1
    if not _INTEGER.fullmatch(value):
        raise NotPlain
    return max(1, int(value))


def _check_pixels(data: bytes, at: dict, pixels: tuple, ts: str, frames: int, max_frame_pixels: int,
                  max_decoded_bytes: int) -> None:
    """dicom.validate's pixel checks; NotPlain where it would reject the file."""
    rows, cols, bits = _us(data, at.get(ROWS)), _us(data, at.get(COLUMNS)), _us(data, at.get(BITS_ALLOCATED))
    samples = _us(data, at.get(SAMPLES), default=1)
    if dicom.frame_size_problem(rows, cols, max_frame_pixels) or \
            rows * cols * (samples or 1) * ((bits + 7) // 8) * frames > max_decoded_bytes:  # 0 counts as 1 there
        raise NotPlain
    undefined = pixels[5]
    if UID(ts).is_encapsulated:
        if not undefined:
            raise NotPlain
        count = sum(1 for _ in generate_frames(data[pixels[3]:pixels[4] - 8], number_of_frames=frames))
        if count < frames:
            raise NotPlain
    elif undefined or pixels[4] - pixels[3] < (rows * cols * samples * frames * bits + 7) // 8:
        raise NotPlain


def _integer(value: str) -> int | None:
    """dicom._int of an IS value."""
    if not value:
        return None
    if not _INTEGER.fullmatch(value):
        raise NotPlain
    return int(value)


def _floats(text: str) -> list[float] | None:
    try:
        return [float(v) for v in text.strip().rstrip(" \x00").split("\\")]
    except ValueError:
        return None


def _slice_position(position: str, orientation: str) -> float | None:
    """dicom._slice_position from the two DS strings."""
    if not position or not orientation:
        return None
    pos, ori = _floats(position), _floats(orientation)
    if pos is None or ori is None:
        raise NotPlain  # pydicom reads a DS it cannot parse again in other VRs, and may find numbers
    if len(pos) != 3 or len(ori) != 6:
        return None
    r, c = ori[:3], ori[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    value = sum(p * q for p, q in zip(pos, normal, strict=True))
    return value if value == value and abs(value) != float("inf") else None


def _spacing(text) -> str | None:
    """dicom.index_facts' pixel spacing: PixelSpacing, else ImagerPixelSpacing, joined."""
    for tag in (SPACING, IMAGER_SPACING):
        value = text(tag).strip()
        if not value:
            continue
        parts = value.rstrip(" \x00").split("\\")
        if len(parts) < 2:
            raise NotPlain  # a single value: the reference decides (kept without a spacing)
        floats = _floats(value)
        if floats is None:
            raise NotPlain
        return dicom.spacing_text(floats)
    return None


def _single(value: str) -> str:
    if "\\" in value:
        raise NotPlain
    return value


def _facts(text, us, uids: dict[int, str], ts: str, frames: int, has_pixels: bool) -> dicom.IndexFacts:
    """dicom.index_facts of the de-identified file, from the scanned values."""
    photometric = _single(text(PHOTOMETRIC))
    return dicom.IndexFacts(
        study_uid=uids[STUDY], series_uid=uids[SERIES], sop_instance_uid=uids[SOP_INSTANCE],
        sop_class_uid=uids[SOP_CLASS], transfer_syntax_uid=ts,
        modality=_single(text(MODALITY))[:16], body_part=_single(text(BODY_PART))[:64],
        series_number=_integer(text(SERIES_NUMBER)), instance_number=_integer(text(INSTANCE_NUMBER)),
        slice_position=_slice_position(text(POSITION), text(ORIENTATION)), frames=frames,
        rows=us(ROWS), columns=us(COLUMNS),
        pixel_spacing=_spacing(text), photometric=photometric or None,
        render_error=dicom.render_problem_of(has_pixels=has_pixels, photometric=photometric.strip(), ts=ts),
        burned_in_annotation=_single(text(BURNED_IN)).upper() == "YES")


def _us_fact(data: bytes, element) -> int | None:
    """dicom._int of a US value: None when absent, empty or multi-valued."""
    if element is None:
        return None
    length = element[4] - element[3]
    if element[1] != b"US" or length % 2:
        raise NotPlain  # an odd length: pydicom cannot decode it
    return _u16(data, element[3])[0] if length == 2 else None


def _encode_ui(tag: int, value: str, implicit: bool = False) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) % 2:
        raw += b"\x00"
    if implicit:
        return _item_header(tag >> 16, tag & 0xFFFF, len(raw)) + raw
    return _ui_header(tag >> 16, tag & 0xFFFF, b"UI", len(raw)) + raw


def _pieces(kept: list[tuple[int, int, int]], new: dict[int, bytes]) -> list[dicom.Piece]:
    """The dataset's pieces in tag order: new bytes joined, runs of copied elements as one span."""
    order = sorted([(tag, (start, end)) for tag, start, end in kept] + list(new.items()))
    pieces: list[dicom.Piece] = []
    for _, piece in order:
        last = pieces[-1] if pieces else None
        if isinstance(piece, tuple):
            if isinstance(last, tuple) and last[1] == piece[0]:
                pieces[-1] = (last[0], piece[1])
                continue
        elif isinstance(last, bytes):
            pieces[-1] = last + piece
            continue
        pieces.append(piece)
    return pieces


def _write(elem, encoding, implicit: bool) -> bytes:
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit, True
    write_data_element(out, elem, encoding)
    return out.getvalue()


def _clean_sequence(data: bytes, charset, start: int, end: int, tag: int, new_uid, implicit: bool) -> bytes:
    """A kept sequence with the profile applied inside its items, encoded by pydicom."""
    raw = (data[charset[2]:charset[4]] if charset else b"") + data[start:end]
    sub = read_dataset(DicomBytesIO(raw), is_implicit_VR=implicit, is_little_endian=True)
    elem = sub[tag]
    deid.clean_items(elem, new_uid)
    return _write(elem, sub.get("SpecificCharacterSet", default_encoding), implicit)


@lru_cache(maxsize=256)
def _emptied_elements(elements: tuple[tuple[int, str, bool], ...], charset: bytes | None,
                      pseudonym: str, implicit: bool) -> dict[int, bytes]:
    """The encoded Z and always-set elements, made by deidentify on a dataset of just those (per series).

    elements: (tag, VR in the file, undefined length) of each, VR "" for one the file lacks.
    """
    ds = Dataset()
    if charset is not None:
        ds.add(RawDataElement(pydicom.tag.Tag(CHARSET), "CS", len(charset), charset, 0, implicit, True))
    for tag, vr, undefined in elements:
        if vr:
            ds.add(DataElement(tag, vr, Sequence() if vr == "SQ" else "", is_undefined_length=undefined))
    changed: set[int] = set()
    deid.deidentify(ds, secret="", pseudonym=pseudonym, changed=changed)
    encoding = ds.get("SpecificCharacterSet", default_encoding)
    return {tag: _write(ds[tag], encoding, implicit) for tag in changed}


PLACEHOLDER = "2.25." + "9" * 59  # 64 characters: no real UID equals it
_meta_lock = Lock()
_meta_templates: OrderedDict[tuple, tuple[bytes, bytes, bytes, int, int]] = OrderedDict()
META_TEMPLATES = 64


def _meta_head(data: bytes, meta: dict, meta_end: int, sop_class: str, sop_instance: str) -> bytes:
    """Preamble, prefix and file meta as the reference writes them, with the new SOP Instance UID."""
    # The template fits every file whose header has the same bytes but for two values: the group
    # length's (pydicom's writer computes it anew) and the SOP Instance UID's (put in per file).
    # Their tags, VRs and the group length's length field stay in the key: pydicom writes both
    # elements in the form it read them, and a group length of other than 4 bytes changes the output.
    skip = [meta[t] for t in (0x00020000, 0x00020003) if t in meta]
    key_parts, pos = [], 132
    for element in sorted(skip, key=lambda e: e[2]):
        key_parts.append(data[pos:element[3] if element[0] == 0x00020000 else element[2] + 6])
        pos = element[4]
    key = (*key_parts, data[pos:meta_end], sop_class)
    with _meta_lock:
        template = _meta_templates.get(key)
        if template is not None:
            _meta_templates.move_to_end(key)
    if template is None:
        template = _meta_template(data[:meta_end], sop_class)
        with _meta_lock:
            _meta_templates[key] = template
            while len(_meta_templates) > META_TEMPLATES:
                _meta_templates.popitem(last=False)
    before, between, after, base_length, placeholder_size = template
    uid = _encode_ui(0x00020003, sop_instance)
    return before + struct.pack("<I", base_length + len(uid) - placeholder_size) + between + uid + after


def _meta_template(head: bytes, sop_class: str) -> tuple[bytes, bytes, bytes, int, int]:
    """Write the file meta as the reference does (the same pydicom calls) with a placeholder SOP Instance UID."""
    ds = read_partial(io.BytesIO(head), stop_when=lambda *_: True)
    meta = ds.file_meta
    deid.clean_file_meta(meta)  # deidentify
    getattr(meta, "MediaStorageSOPClassUID", "")  # what dicom.validate reads (it converts the element)
    meta.MediaStorageSOPInstanceUID = PLACEHOLDER  # deidentify
    if sop_class and meta.get("MediaStorageSOPClassUID") != sop_class:  # dicom.layout
        meta.MediaStorageSOPClassUID = sop_class
    meta.get("TransferSyntaxUID", "")
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = False, True
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    written = out.getvalue()
    placeholder = _encode_ui(0x00020003, PLACEHOLDER)
    at = written.find(placeholder)
    if written[132:140] != b"\x02\x00\x00\x00UL\x04\x00" or at < 0 or written.find(placeholder, at + 1) >= 0:
        raise NotPlain
    return (written[:140], written[144:at], written[at + len(placeholder):], _u32(written, 140)[0],
            len(placeholder))
