"""WADO-RS: stored instances, metadata with absolute BulkDataURIs, frames, bulk data, rendered images."""

import io
import json
import logging
import math
from collections.abc import Iterable, Iterator

import pydicom
import sqlalchemy as sa
from flask import current_app
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.multival import MultiValue
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID
from pydicom.valuerep import validate_value

from app.cases.models import Case
from app.core.errors import BadRequest, NotFound
from app.dicomweb.media import EXPLICIT_LE, MediaRange, NotAcceptable, matches
from app.extensions import db
from app.imaging import service as imaging
from app.imaging.models import Instance, Series, Study
from app.imaging.render import RenderRequest

log = logging.getLogger(__name__)
BULK_THRESHOLD = 1024
BIG_ENDIAN = "1.2.840.10008.1.2.2"
# The media type a compressed frame is sent as when the client asks for it by name.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle", "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg", "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg", "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls", "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2", "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
}
# Stands for the request's DICOMweb root in cached metadata; it cannot occur in DICOM text.
_ROOT = "\x00root\x00"
_ROOT_IN_JSON = json.dumps(_ROOT)[1:-1]
OCTET = "application/octet-stream"


def find_instances(case_id: int, study_uid: str, series_uid: str | None = None,
                   sop: str | None = None) -> list[Instance]:
    """Return the case's instances of a study, series or one instance, in series then display order."""
    stmt = (sa.select(Instance).join(Series, Instance.series_id == Series.id).join(Study, Series.study_id == Study.id)
            .where(Instance.case_id == case_id, Study.case_id == case_id, Study.study_uid == study_uid)
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id,
                      Instance.instance_number.is_(None), Instance.instance_number, Instance.id))
    if series_uid is not None:
        stmt = stmt.where(Series.series_uid == series_uid)
    if sop is not None:
        stmt = stmt.where(Instance.sop_instance_uid == sop)
    found = list(db.session.scalars(stmt))
    if not found:
        raise NotFound("instance not found" if sop else "series not found" if series_uid else "study not found")
    return found


def _dataset(inst: Instance, *, pixels: bool = True) -> Dataset:
    return pydicom.dcmread(io.BytesIO(imaging.instance_bytes(inst)), stop_before_pixels=not pixels)


def _native_ts(ts: str) -> str:
    # Native pixel data of (implicit, explicit or deflated) little endian files is the same bytes.
    return BIG_ENDIAN if ts == BIG_ENDIAN else EXPLICIT_LE


# ---- instances ---------------------------------------------------------------------------------

def retrieve_parts(instances: list[Instance], ranges: list[MediaRange]):
    """Return the parts of a Retrieve Instances answer, or raise 406 if no range can be served."""
    stored = {i.transfer_syntax_uid for i in instances}
    for r in ranges:
        wants = r.type if r.mimetype == "multipart/related" else r.mimetype if r.mimetype != "*/*" else None
        if r.mimetype not in ("multipart/related", "*/*", "application/dicom"):
            continue
        if not matches(wants, "application/dicom"):
            continue
        if r.transfer_syntax in (None, "*") or stored == {r.transfer_syntax}:
            return ((f"application/dicom; transfer-syntax={i.transfer_syntax_uid}", imaging.instance_bytes(i))
                    for i in instances)
    raise NotAcceptable(detail={"supported": 'multipart/related; type="application/dicom"',
                                "transfer_syntaxes": sorted(stored)})


# ---- metadata ----------------------------------------------------------------------------------

def readable(ds: Dataset, tags: Iterable[int] | None = None, *,
             report: bool = True) -> Iterator[tuple[int, DataElement]]:
    """Each element (of ``tags`` if given) whose value pydicom can read, with its tag; the others are left out.

    Reading converts the element's raw bytes, which may fail (a US of three bytes, an IS beyond any
    integer, an IS of letters): iterating the dataset itself would stop at the first such element.
    ``report`` logs each element left out; a second walk of the same dataset passes False so that
    it is logged once.
    """
    for tag in ds.keys() if tags is None else (t for t in tags if t in ds):  # noqa: SIM118 - see below
        try:
            yield tag, ds[tag]  # ds[tag] converts the raw value: inside the try
        except Exception as exc:  # noqa: BLE001 - any element pydicom cannot read is left out
            if report:
                log.info("metadata: element %08X left out (%s)", tag, type(exc).__name__)


def _paths(ds: Dataset, prefix: str, out: dict[int, str]) -> dict[int, str]:
    """Map each element (by identity) to its bulkdata path: tag[/item/tag...].

    Quiet about unreadable elements: json_of, which walks the same dataset next, logs them.
    """
    for tag, elem in readable(ds, report=False):
        path = f"{prefix}{tag:08X}"
        out[id(elem)] = path
        if elem.VR == "SQ":
            for n, item in enumerate(elem.value):
                _paths(item, f"{path}/{n}/", out)
    return out


# Checked as pydicom's strict reading checks on reading: lengths of text, UIDs, and numbers (not code
# strings, dates or times, whose conversion on reading does not check them).
_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UI"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})


def _check_value(elem: DataElement) -> None:
    """Raise ValueError if the element holds a value the DICOM standard does not allow (at any depth)."""
    if elem.VR == "SQ":
        for item in elem.value:
            for inner in item:
                _check_value(inner)
        return
    for value in elem.value if isinstance(elem.value, (MultiValue, list)) else [elem.value]:
        if value is None or value == "":
            continue
        if elem.VR in ("DS", "IS"):
            validate_value(elem.VR, getattr(value, "original_string", None) or str(value), config.RAISE)
        elif elem.VR in _TEXT_VRS:
            validate_value(elem.VR, str(value), config.RAISE)
        elif elem.VR in _NUMBER_VRS:
            validate_value(elem.VR, value, config.RAISE)
        if isinstance(value, float) and not math.isfinite(value):  # JSON has no Infinity or NaN
            raise ValueError("not a finite number")


def json_of(ds: Dataset, *, bulk_data_threshold: int = BULK_THRESHOLD, bulk_data_element_handler=None) -> dict:
    """The dataset in the DICOM JSON model, leaving out each element whose value is invalid.

    What ``Dataset.to_json_dict(suppress_invalid_tags=True)`` does, without its switch of pydicom's
    process-wide reading mode to strict (``config.strict_reading``) while it runs: meanwhile every
    other thread's DICOM reads raised on values they should only warn about (an upload was refused,
    a frame not rendered), and two overlapping metadata requests could leave the mode strict for
    good. Here each element is checked with the mode given explicitly.
    """
    out = {}
    for tag, elem in readable(ds):
        try:
            _check_value(elem)
            out[f"{tag:08X}"] = elem.to_json_dict(bulk_data_element_handler, bulk_data_threshold)
        except Exception as exc:  # noqa: BLE001 - any element pydicom cannot give is left out, as before
            log.info("metadata: element %08X left out (%s)", tag, type(exc).__name__)
    return out


def _metadata_text(inst: Instance) -> str:
    ds = _dataset(inst)
    paths = _paths(ds, "", {})
    base = f"{_ROOT}/studies/{inst.series.study.study_uid}/series/{inst.series.series_uid}" \
           f"/instances/{inst.sop_instance_uid}/bulkdata/"
    body = json_of(ds, bulk_data_threshold=BULK_THRESHOLD,
                   bulk_data_element_handler=lambda elem: base + paths[id(elem)])
    body["00083002"] = {"vr": "UI", "Value": [inst.transfer_syntax_uid]}  # AvailableTransferSyntaxUID
    return json.dumps(dict(sorted(body.items())), separators=(",", ":"), ensure_ascii=False)


def metadata(instances: list[Instance], *, root: str) -> str:
    """Return the DICOM JSON array of the instances' metadata, bulk data as absolute BulkDataURIs."""
    cache = current_app.extensions["dicomweb_metadata_cache"]
    items = []
    for inst in instances:
        text = cache.get(inst.sha256)
        if text is None:
            text = _metadata_text(inst).encode()
            cache.put(inst.sha256, text)
        items.append(text.decode().replace(_ROOT_IN_JSON, root))
    return "[" + ",".join(items) + "]"


# ---- frames and bulk data ----------------------------------------------------------------------

def parse_frame_list(raw: str) -> list[int]:
    """Parse a frame list such as ``1,3`` (1-based)."""
    numbers = [p.strip() for p in raw.replace("%2C", ",").replace("%2c", ",").split(",")]
    if not numbers or not all(n.isascii() and n.isdigit() and 0 < int(n) < 1_000_000 for n in numbers):
        raise BadRequest("invalid frame list", {"frames": raw})
    return [int(n) for n in numbers]


def _frame_type(ts: str, ranges: list[MediaRange]) -> tuple[str, str]:
    """Choose (media type, transfer syntax) for frames stored in ts, or raise 406."""
    encapsulated = UID(ts).is_encapsulated
    part_ts = ts if encapsulated else _native_ts(ts)
    for r in ranges:
        if r.mimetype not in ("multipart/related", "*/*"):
            continue
        wanted = r.type if r.mimetype == "multipart/related" else None
        if r.transfer_syntax not in (None, "*", part_ts):
            continue
        if wanted in (None, "*/*", "*", OCTET, "application/*"):
            return OCTET, part_ts
        if encapsulated and matches(wanted, FRAME_MEDIA_TYPES.get(ts, "")):
            return FRAME_MEDIA_TYPES[ts], part_ts
    raise NotAcceptable(detail={"supported": f'multipart/related; type="{OCTET}"; transfer-syntax={part_ts}'})


def _frame(ds: Dataset, ts: str, frames: int, number: int) -> bytes:
    if UID(ts).is_encapsulated:
        return get_frame(ds.PixelData, number - 1, number_of_frames=frames)
    length = get_expected_length(ds, "bytes") // frames
    if int(ds.get("BitsAllocated", 8)) == 1 and (int(ds.Rows) * int(ds.Columns)) % 8:
        raise NotAcceptable("1-bit frames that do not end on a byte boundary cannot be sent as frames")
    return bytes(ds.PixelData[(number - 1) * length:number * length])


def frames(inst: Instance, numbers: list[int], ranges: list[MediaRange]):
    """Return (part type, parts) for the frames of an instance, stored bytes as they are."""
    ts = inst.transfer_syntax_uid
    media, part_ts = _frame_type(ts, ranges)
    ds = _dataset(inst)
    if "PixelData" not in ds:
        raise NotFound("the instance has no pixel data")
    bad = [n for n in numbers if n > inst.frames]
    if bad:
        raise NotFound("frame not found", {"frames": inst.frames, "asked": bad})
    ctype = f"{media}; transfer-syntax={part_ts}"
    return media, [(ctype, _frame(ds, ts, inst.frames, n)) for n in numbers]


def bulkdata(inst: Instance, path: str, ranges: list[MediaRange]):
    """Return (part type, parts) for one bulk data element named by its path (tag[/item/tag...])."""
    ds = _dataset(inst)
    node, elem = ds, None
    segments = path.strip("/").split("/")
    try:
        for i, seg in enumerate(segments):
            if i % 2:
                node = elem.value[int(seg)]
            else:
                elem = node[int(seg, 16)]
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        raise NotFound("bulk data not found") from None
    if len(segments) % 2 == 0 or elem is None:
        raise NotFound("bulk data not found")
    if elem.tag == 0x7FE00010 and elem is ds.get("PixelData"):
        return frames(inst, list(range(1, inst.frames + 1)), ranges)
    if not any(r.mimetype in ("multipart/related", "*/*") and r.type in (None, "*/*", OCTET) for r in ranges):
        raise NotAcceptable(detail={"supported": f'multipart/related; type="{OCTET}"'})
    value = elem.value if isinstance(elem.value, bytes) else b""
    return OCTET, [(f"{OCTET}; transfer-syntax={_native_ts(inst.transfer_syntax_uid)}", value)]


# ---- rendered ----------------------------------------------------------------------------------

def rendered_format(ranges: list[MediaRange], *, jpeg_only: bool = False) -> str:
    """Choose jpeg or png from the Accept header, or raise 406."""
    for r in ranges:
        if r.mimetype in ("*/*", "image/*", "image/jpeg"):
            return "jpeg"
        if r.mimetype == "image/png" and not jpeg_only:
            return "png"
    raise NotAcceptable(detail={"supported": ["image/jpeg"] if jpeg_only else ["image/jpeg", "image/png"]})


def _pair(raw: str | None, name: str, count: int) -> list[float] | None:
    if not raw:
        return None
    try:
        values = [float(v) for v in raw.split(",")[:count]]
    except ValueError:
        raise BadRequest(f"invalid {name}", {name: raw}) from None
    if len(values) < count or any(v != v or abs(v) > 1e9 for v in values):
        raise BadRequest(f"invalid {name}", {name: raw})
    return values


def render_request(args, *, frame: int, fmt: str, default_size: int | None = None) -> RenderRequest:
    """Build a render request from PS3.18 ``viewport`` (w,h) and ``window`` (center,width) parameters."""
    viewport = _pair(args.get("viewport"), "viewport", 2)
    window = _pair(args.get("window"), "window", 2)
    size = int(max(viewport)) if viewport else default_size
    if size is not None and not 16 <= size <= 4096:
        raise BadRequest("viewport must be between 16 and 4096", {"viewport": args.get("viewport")})
    wc, ww = (window[0], window[1]) if window else (None, None)
    if ww is not None and ww <= 0:
        raise BadRequest("window width must be positive", {"window": args.get("window")})
    return RenderRequest(frame=frame, wc=wc, ww=ww, size=size, fmt=fmt)


def rendered(inst: Instance, req: RenderRequest) -> bytes:
    """Render a frame of an instance (reusing the viewer's renderer and cache)."""
    return imaging.rendered_frame(inst, req).data


def thumbnail(case: Case, instances: list[Instance], fmt: str, size: int) -> bytes:
    """Render the middle renderable instance of the given ones as a small image."""
    shown = [i for i in instances if not i.render_error]
    if not shown:
        raise imaging.NotRenderable(detail="nothing renderable here")
    if len({i.series_id for i in shown}) > 1:
        shown = [i for i in shown if i.series_id == shown[0].series_id]
    middle = shown[len(shown) // 2]
    return imaging.rendered_frame(middle, RenderRequest(frame=1 + (middle.frames - 1) // 2, size=size, fmt=fmt)).data
