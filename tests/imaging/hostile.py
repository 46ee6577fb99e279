"""A hostile-file corpus, made in code (nothing binary is committed): ZIP bombs, lying DICOM, image bombs.

Each maker returns bytes (or a multipart body) small enough to build in a fraction of a second,
while claiming or expanding to far more than the server may spend on it.
"""

import io
import struct
import zipfile
import zlib

import pydicom
from PIL import Image

from app.imaging import dicom
from tests.imaging.dicom_samples import sample

MIB = 1024 * 1024


def zip_of(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Return a ZIP of the given members (name → bytes), deflated at the highest level."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression, compresslevel=9 if compression == zipfile.ZIP_DEFLATED else None) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def zeros_zip(mib: int) -> bytes:
    """A ZIP of one member of `mib` MiB of zeros: about 1,000:1."""
    return zip_of({"zeros.dcm": bytes(mib * MIB)})


def nested_zip(levels: int = 3, mib: int = 16) -> bytes:
    """A ZIP of a ZIP of ... of zeros."""
    data = zeros_zip(mib)
    for level in range(levels):
        data = zip_of({f"level{level}.zip": data})
    return data


def many_entries_zip(n: int = 20_001) -> bytes:
    """A ZIP with n tiny members (stored, so it is quick to build)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for i in range(n):
            z.writestr(f"f{i}", b"")
    return buf.getvalue()


def dicom_bytes(ds: pydicom.Dataset, *, preamble: bool = True, implicit: bool | None = None) -> bytes:
    """Serialise a dataset; without the preamble and file meta when asked (old modality exports)."""
    out = io.BytesIO()
    if preamble:
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()
    ds = ds.copy()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.preamble = None
    ds.save_as(out, implicit_vr=True if implicit is None else implicit, little_endian=True)
    return out.getvalue()


def mislabelled(ds: pydicom.Dataset, *, said: str, implicit: bool) -> bytes:
    """A Part 10 file whose meta names transfer syntax ``said`` over a dataset written in the other VR encoding."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    file_meta = ds.file_meta.copy()
    file_meta.TransferSyntaxUID = said
    write_file_meta_info(meta, file_meta, enforce_standard=True)
    return b"\0" * 128 + b"DICM" + meta.getvalue() + dicom_bytes(ds, preamble=False, implicit=implicit)


def encoded(tag: int, vr: str, value: bytes, *, implicit: bool = False, length: int | None = None) -> bytes:
    """One little endian element as a file holds it (length: the header's, if not the value's)."""
    group, element = tag >> 16, tag & 0xFFFF
    length = len(value) if length is None else length
    if implicit:
        return struct.pack("<HHI", group, element, length) + value
    if vr in dicom.LONG_HEADER_VRS:
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, length) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), length) + value


def spliced(data: bytes, tag: int, raw: bytes) -> bytes:
    """data with its top-level element tag replaced by raw (put in tag order if data lacks it)."""
    starts: dict[int, int] = {}
    dicom.read_dataset(io.BytesIO(data), starts=starts)
    order = sorted(starts.items())
    for (at, start), following in zip(order, [*order[1:], (None, len(data))], strict=True):
        if at == tag:
            return data[:start] + raw + data[following[1]:]
        if at > tag:
            return data[:start] + raw + data[start:]
    return data + raw


def huge_frame_dicom(rows: int, columns: int, *, source: str = "MR_small_RLE.dcm", frames: int | None = None) -> bytes:
    """A small real file (native, RLE or JPEG) whose header claims a frame of rows × columns."""
    ds = pydicom.dcmread(sample(source))
    ds.Rows, ds.Columns = rows, columns
    if frames is not None:
        ds.NumberOfFrames = frames
    return dicom_bytes(ds)


def png_bomb(side: int) -> bytes:
    """A 1-bit grey PNG of side × side pixels, all black: tiny file, side² pixels once decoded."""
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg(width: int, height: int, *, orientation: int = 1) -> bytes:
    """A real grey JPEG of width × height, with an EXIF orientation when asked."""
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("L", (width, height)).save(out, "JPEG", quality=10, exif=exif.tobytes())
    return out.getvalue()


def big_zeros_zip(mib: int) -> bytes:
    """A ZIP holding `mib` MiB of zeros, deflated as it is written (never whole in memory)."""
    buf = io.BytesIO()
    zeros = bytes(MIB)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, \
            z.open("zeros.dcm", "w", force_zip64=True) as member:
        for _ in range(mib):
            member.write(zeros)
    return buf.getvalue()


def _ct() -> pydicom.Dataset:
    return pydicom.dcmread(sample("CT_small.dcm"))


def truncated_dicom() -> bytes:
    data = dicom_bytes(_ct())
    return data[: len(data) // 2]


def lying_transfer_syntax() -> bytes:
    """Native pixel data under a file meta that says RLE (same length UID, so patched in place)."""
    out = io.BytesIO()
    _ct().save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    explicit, rle = b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00"
    assert explicit in out.getvalue()
    return out.getvalue().replace(explicit, rle, 1)


def ct_with_raw(tag: int, vr: str, value: bytes, *, pixels: bool = True) -> bytes:
    """CT_small.dcm with one element written by hand, in any VR and of any length."""
    ds = _ct()
    if not pixels:
        del ds.PixelData
    return spliced(dicom_bytes(ds), tag, encoded(tag, vr, value))


def nested_sequences(depth: int) -> bytes:
    """CT_small.dcm with a removed sequence holding sequences `depth` deep: pydicom recurses for each level."""
    item, item_end, end = (struct.pack("<HHI", 0xFFFE, e, n) for e, n in (
        (0xE000, 0xFFFFFFFF), (0xE00D, 0), (0xE0DD, 0)))
    value = b""
    for tag in [0x00081140] * depth + [0x00081111]:
        value = encoded(tag, "SQ", item + value + item_end + end, length=0xFFFFFFFF)
    return spliced(dicom_bytes(_ct()), 0x00081111, value)


# DICOM files the pydicom path fails on with an error of its own: (upload name, maker, the error's type).
MALFORMED = [
    ("name-as-US.dcm", lambda: ct_with_raw(0x00100010, "US", b"\x01\x00"), "OSError"),  # no pseudonym fits US
    ("rows-3-bytes.dcm", lambda: ct_with_raw(0x00280010, "US", b"\x80\x00\x00", pixels=False),
     "BytesLengthException"),
    ("nested.dcm", lambda: nested_sequences(300), "RecursionError"),
    ("date-in-QQ.dcm", lambda: ct_with_raw(0x00080020, "QQ", b"20200101"), "NotImplementedError"),  # no such VR
    ("name-as-SQ.dcm", lambda: ct_with_raw(0x00100010, "SQ", b""), "TypeError"),
]


def traversal_zip() -> bytes:
    return zip_of({"../../../../tmp/evil.dcm": b"x" * 100, "/etc/cron.d/evil": b"x" * 100, "C:\\evil.dcm": b"x"})


# (upload name, maker, what the reason says): every one must be refused with that reason.
CORPUS = [
    ("bomb.zip", lambda: zeros_zip(64), "ZIP bomb"),
    ("nested.zip", lambda: nested_zip(3), "ZIP inside a ZIP"),
    ("entries.zip", lambda: many_entries_zip(20_001), "at most 20000"),
    ("traversal.zip", traversal_zip, "unsupported file type"),
    ("native-huge.dcm", lambda: huge_frame_dicom(30000, 30000, source="CT_small.dcm"), "frame too large"),
    ("rle-huge.dcm", lambda: huge_frame_dicom(30000, 30000), "frame too large"),
    ("jpeg-huge.dcm", lambda: huge_frame_dicom(16000, 16000, source="SC_rgb_jpeg_dcmtk.dcm"), "frame too large"),
    ("frames.dcm", lambda: huge_frame_dicom(64, 64, frames=1_000_000), "image too large"),
    ("truncated.dcm", truncated_dicom, ""),
    ("lying-syntax.dcm", lying_transfer_syntax, ""),
    ("bomb.png", lambda: png_bomb(19999), "image too large"),
    ("rotated.jpg", lambda: jpeg(9000, 8000, orientation=6), "image too large"),
    ("fake.pdf", lambda: b"<html><script>alert(1)</script></html>", "unsupported file type"),
    ("cut.pdf", lambda: b"%PDF-1.7\n" + bytes(100_000), "incomplete PDF"),
    ("zeros\x00.dcm", lambda: bytes(4 * MIB), "unsupported file type"),
    ("\u202egpj.exe", lambda: b"MZ" + bytes(1000), "unsupported file type"),
    ("🩻" * 40 + ".dcm", lambda: b"\x00" * 10, "unsupported file type"),
    ("n" * 1000 + ".dcm", lambda: b"\x00" * 10, "unsupported file type"),
]
