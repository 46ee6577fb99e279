"""Rendering a DICOM frame to PNG/JPEG with a window, and the caches that make scrolling fast."""

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

# Window (center, width) used when the file has none, by modality (CT: soft tissue).
MODALITY_WINDOWS = {"CT": (40.0, 400.0)}


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
    """A thread-safe least-recently-used cache of bytes, bounded by total size."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
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

    def put(self, key, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._data[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._size -= len(evicted)

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
    values = apply_modality_lut(arr, ds).astype(np.float32)
    center, width = _window(ds, values, wc, ww)
    # The linear VOI function of PS3.3 C.11.2.1.2.1.
    out = ((values - (center - 0.5)) / (width - 1.0 if width > 1 else 1.0) + 0.5) * 255.0
    out = np.clip(out, 0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        out = 255 - out
    return out, (center, width)


def _to_8bit_rgb(ds: Dataset, arr: np.ndarray) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.dtype != np.uint8:
        top = float(arr.max()) or 1.0
        bits = int(ds.get("BitsStored", 8) or 8)
        scale = 255.0 / ((1 << bits) - 1 if top > 255 else 255.0)
        arr = np.clip(arr.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    return arr


def render(data: bytes, req: RenderRequest) -> Rendered:
    """Decode one frame of a DICOM file and encode it as PNG or JPEG, with the window it used."""
    try:
        # The whole dataset, not just the pixel module: the default window depends on Modality.
        ds = dcmread(io.BytesIO(data))
        arr = pixel_array(ds, index=req.frame - 1)
    except (InvalidDicomError, ValueError, NotImplementedError, RuntimeError, AttributeError, KeyError,
            IndexError) as exc:
        raise RenderError(f"cannot decode the frame: {exc}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    window = None
    if arr.ndim == 3 or photometric == "PALETTE COLOR":
        image = Image.fromarray(_to_8bit_rgb(ds, arr), "RGB")
    else:
        gray, window = _to_8bit_gray(ds, arr, req.wc, req.ww)
        image = Image.fromarray(gray, "L")
    if req.size:
        image.thumbnail((req.size, req.size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if req.fmt == "jpeg":
        image.save(out, "JPEG", quality=88)
    else:
        image.save(out, "PNG", compress_level=1)
    return Rendered(out.getvalue(), window)
