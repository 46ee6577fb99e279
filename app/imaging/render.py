"""Rendering a DICOM frame to PNG/JPEG with a window, and the caches that make scrolling fast."""

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from app.imaging.dicom import RejectedFile, check_decoded_size, frames_of

# Window (center, width) used when the file has none, by modality (CT: soft tissue).
MODALITY_WINDOWS = {"CT": (40.0, 400.0)}
# Baseline JPEG can be decoded at 1/2, 1/4 or 1/8 of its size (DCT scaling): thumbnails ask for that.
SCALABLE_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}


class RenderError(Exception):
    """The frame cannot be rendered; the message says why."""


@dataclass(frozen=True)
class RenderRequest:
    frame: int = 1
    wc: float | None = None
    ww: float | None = None
    size: int | None = None
    fmt: str = "png"


@dataclass(frozen=True)
class Rendered:
    """An encoded frame and the window (centre, width) it was rendered with; None for colour images."""

    data: bytes
    window: tuple[float, float] | None = None

    def __len__(self) -> int:
        # The render cache is bounded by encoded bytes.
        return len(self.data)


class ByteLRU:
    """A thread-safe least-recently-used cache, bounded by the total weight of its values: their size
    in bytes by default, or what ``weigh`` says (``lambda _value: 1`` bounds the number of entries)."""

    def __init__(self, max_bytes: int, *, weigh: Callable[[object], int] = len):
        self.max_bytes, self.weigh = max_bytes, weigh
        self._data: OrderedDict = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value) -> None:
        weight = self.weigh(value)
        if weight > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= self.weigh(old)
            self._data[key] = value
            self._size += weight
            while self._size > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._size -= self.weigh(evicted)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0


def _first(value) -> float:
    """The first of a multi-valued window attribute (files may carry several presets)."""
    if hasattr(value, "__len__") and not isinstance(value, str):
        return float(value[0])
    return float(value)


def _window(ds: Dataset, arr: np.ndarray, wc: float | None, ww: float | None) -> tuple[float, float]:
    if wc is not None and ww is not None:
        return wc, max(ww, 1.0)
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        try:
            return _first(center), max(_first(width), 1.0)
        except (TypeError, ValueError, IndexError):
            pass
    default = MODALITY_WINDOWS.get(str(ds.get("Modality", "")))
    if default:
        return default
    lo, hi = float(arr.min()), float(arr.max())
    return (lo + hi) / 2.0, max(hi - lo, 1.0)


def _to_8bit_gray(ds: Dataset, arr: np.ndarray, wc, ww) -> tuple[np.ndarray, tuple[float, float]]:
    # One float copy of the frame, changed in place from here on (a 64 MP frame is 256 MB of float32).
    if "ModalityLUTSequence" in ds:
        values = apply_modality_lut(arr, ds).astype(np.float32, copy=False)
    else:
        values = arr.astype(np.float32)
        slope, intercept = _rescale(ds)
        if slope != 1.0:
            values *= slope
        if intercept:
            values += intercept
    del arr
    center, width = _window(ds, values, wc, ww)
    # The linear VOI function of PS3.3 C.11.2.1.2.1: ((v - (c - 0.5)) / (w - 1) + 0.5) * 255.
    values -= center - 0.5
    values *= 255.0 / (width - 1.0 if width > 1 else 1.0)
    values += 127.5
    np.clip(values, 0, 255, out=values)
    out = values.astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        np.subtract(255, out, out=out)
    return out, (center, width)


def _rescale(ds: Dataset) -> tuple[float, float]:
    try:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        return 1.0, 0.0


def _to_8bit_rgb(ds: Dataset, arr: np.ndarray) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.dtype != np.uint8:
        top = float(arr.max()) or 1.0
        bits = int(ds.get("BitsStored", 8) or 8)
        values = arr.astype(np.float32)
        values *= 255.0 / ((1 << bits) - 1 if top > 255 else 255.0)
        np.clip(values, 0, 255, out=values)
        arr = values.astype(np.uint8)
    return arr


def _decode(ds: Dataset, req: RenderRequest) -> np.ndarray:
    """Decode the asked frame; a baseline JPEG wanted small is decoded small."""
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if req.size and ts in SCALABLE_JPEG and photometric != "PALETTE COLOR" and int(ds.get("BitsAllocated", 0)) == 8:
        frame = get_frame(ds.PixelData, req.frame - 1, number_of_frames=frames_of(ds))
        with Image.open(io.BytesIO(frame)) as img:
            img.draft(img.mode, (req.size, req.size))
            mode = "RGB" if int(ds.get("SamplesPerPixel", 1) or 1) == 3 else "L"
            return np.asarray(img.convert(mode))
    return pixel_array(ds, index=req.frame - 1)


def render(data: bytes, req: RenderRequest, *, max_frame_pixels: int | None = None) -> Rendered:
    """Decode one frame of a DICOM file as PNG or JPEG, with the window it used; refuse frames over max_frame_pixels."""
    try:
        # The whole dataset, not just the pixel module: the default window depends on Modality.
        ds = dcmread(io.BytesIO(data))
        if max_frame_pixels is not None:
            check_decoded_size(ds, frames=1, max_frame_pixels=max_frame_pixels, max_bytes=2**63)
        arr = _decode(ds, req)
    except RejectedFile as exc:
        raise RenderError(str(exc)) from exc
    except (InvalidDicomError, ValueError, NotImplementedError, RuntimeError, AttributeError, KeyError,
            IndexError, OSError) as exc:
        raise RenderError(f"cannot decode the frame: {exc}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    window = None
    if arr.ndim == 3 or photometric == "PALETTE COLOR":
        image = Image.fromarray(_to_8bit_rgb(ds, arr), "RGB")
    else:
        gray, window = _to_8bit_gray(ds, arr, req.wc, req.ww)
        image = Image.fromarray(gray, "L")
    del arr
    if req.size:
        image.thumbnail((req.size, req.size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if req.fmt == "jpeg":
        image.save(out, "JPEG", quality=88)
    else:
        image.save(out, "PNG", compress_level=1)
    return Rendered(out.getvalue(), window)
