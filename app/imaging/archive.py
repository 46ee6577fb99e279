"""Expanding an upload into its files: ZIP archives (a CD export, a zipped study) are opened here.

Each uploaded file comes out as an ``Entry`` to ingest, or as a ``Rejected`` with the reason, in
upload order. Archive members are read one at a time, so memory holds one member, never the
expanded archive.
"""

import io
import os
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

ZIP_MAGIC = b"PK\x03\x04"
MAX_ZIP_MEMBERS = 20_000
# DICOM rarely deflates beyond 10:1 (CT air, blank overlays); a ZIP bomb deflates by 1,000:1.
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024  # below this much expanded data the ratio does not matter


class Entry(NamedTuple):
    """A file to ingest: its cleaned name (``archive.zip/dir/file`` for members) and its bytes."""

    filename: str
    stream: BinaryIO


class Rejected(NamedTuple):
    """A file that is not ingested, and why (shown to the uploader next to its name)."""

    filename: str
    error: str


def clean_name(name: str) -> str:
    """Return a file name fit to show and store: NFC, forward slashes, no control characters."""
    name = unicodedata.normalize("NFC", (name or "").replace("\\", "/"))
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[-255:] or "unnamed"


def expand(files: Iterable[tuple[str, BinaryIO]], *, max_total: int) -> Iterator[Entry | Rejected]:
    """Yield every uploaded (name, stream) as an entry, ZIP archives as their members; close each stream.

    max_total bounds what all the request's archives together may expand to.
    """
    budget = [max_total]
    for filename, stream in files:
        name = clean_name(filename)
        head = stream.read(4)
        stream.seek(0)
        try:
            if head == ZIP_MAGIC:
                yield from _members(name, stream, max_total, budget)
            else:
                yield Entry(name, stream)
        finally:
            stream.close()


def _too_expansive(expanded: int, compressed: int) -> bool:
    return expanded > RATIO_FLOOR and expanded > MAX_RATIO * max(compressed, 1)


def _members(name: str, stream: BinaryIO, max_total: int, budget: list[int]) -> Iterator[Entry | Rejected]:
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile:
        yield Rejected(name, "damaged ZIP archive")
        return
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        yield Rejected(name, f"ZIP has {len(members)} files; at most {MAX_ZIP_MEMBERS} per upload")
        return
    # zipfile never inflates a member past its declared size, so the declared sizes bound the work.
    expanded = sum(m.file_size for m in members)
    if expanded > budget[0]:
        yield Rejected(name, f"ZIP expands beyond the upload limit of {max_total // (1024 * 1024)} MB")
        return
    archive_size = stream.seek(0, os.SEEK_END)
    if _too_expansive(expanded, archive_size):
        yield Rejected(name, f"ZIP expands {expanded // max(archive_size, 1)} times its size (at most {MAX_RATIO}):"
                             " refused as a possible ZIP bomb")
        return
    budget[0] -= expanded
    for member in members:
        inner = f"{name}/{clean_name(member.filename)}"
        base = os.path.basename(member.filename)
        # Listed, never dropped in silence: the uploader sees every name the archive held.
        if member.filename.startswith("__MACOSX/") or base.startswith("._") or base == ".DS_Store":
            yield Rejected(inner, "macOS metadata, not a file of the study: skipped")
            continue
        if base.startswith("."):
            yield Rejected(inner, "hidden file (name starts with '.'): skipped")
            continue
        if member.flag_bits & 0x1:
            yield Rejected(inner, "encrypted ZIP entry")
            continue
        if _too_expansive(member.file_size, member.compress_size):
            yield Rejected(inner, f"ZIP entry expands more than {MAX_RATIO} times: refused as a possible ZIP bomb")
            continue
        try:
            with archive.open(member) as packed:
                # A ZIP inside is recognised from its first bytes, before anything more is inflated.
                head = packed.read(4)
                if head == ZIP_MAGIC:
                    yield Rejected(inner, "ZIP inside a ZIP is not supported; upload it separately")
                    continue
                data = head + packed.read()
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as exc:
            yield Rejected(inner, f"damaged ZIP entry: {type(exc).__name__}")
            continue
        yield Entry(inner, io.BytesIO(data))
