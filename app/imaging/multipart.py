"""Reading a multipart upload as a stream: each file is handed on as soon as it has arrived.

Werkzeug's form parser reads the whole body before the view runs; for a study of hundreds of
files over a slow link that wastes the upload time. Here each completed file part is yielded
while the rest of the body is still arriving. Parts are split with ``bytes.find`` on the
delimiter (fast, C-level), and a part stays in memory up to SPOOL_MAX, then moves to a temp file.
"""

import io
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from werkzeug.http import parse_options_header

from app.core.errors import BadRequest

READ_SIZE = 256 * 1024
SPOOL_MAX = 8 * 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024


def boundary_of(content_type: str | None) -> bytes:
    """Return the multipart boundary of a Content-Type header, or raise BadRequest."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise BadRequest("send multipart/form-data with one or more 'files' fields",
                         {"content_type": content_type})
    return boundary.encode("latin-1")


class _Part:
    """The body of one part: in memory while small, in a temp file past SPOOL_MAX."""

    def __init__(self):
        self.file: BinaryIO = io.BytesIO()
        self.size = 0

    def write(self, data) -> None:
        self.size += len(data)
        if self.size > SPOOL_MAX and isinstance(self.file, io.BytesIO):
            spilled = tempfile.TemporaryFile()  # noqa: SIM115 - closed by archive.expand after use
            spilled.write(self.file.getbuffer())
            self.file = spilled
        self.file.write(data)

    def done(self) -> BinaryIO:
        self.file.seek(0)
        return self.file


def _disposition(headers: bytes) -> tuple[str, str | None]:
    """Return (name, filename) from a part's Content-Disposition header."""
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            # Browsers send UTF-8 file names as raw bytes inside filename="...".
            _, options = parse_options_header(value.decode("utf-8", "replace"))
            return options.get("name", ""), options.get("filename")
    raise BadRequest("multipart part without Content-Disposition")


def iter_files(stream: BinaryIO, boundary: bytes, field: str = "files") -> Iterator[tuple[str, BinaryIO]]:
    """Yield (filename, file) for each file part named ``field``, as soon as it is complete."""

    def select(headers: bytes) -> str | None:
        name, filename = _disposition(headers)
        return filename if name == field else None

    return iter_parts(stream, boundary, select)


def iter_parts(stream: BinaryIO, boundary: bytes, select) -> Iterator[tuple[str, BinaryIO]]:
    """Yield (label, body) for each part that ``select(headers)`` labels (not None), once complete."""
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    buf = bytearray()
    eof = False
    # readinto a reused buffer where the stream has it (werkzeug's request stream): its read()
    # would copy each chunk once more into a new bytes object.
    scratch = memoryview(bytearray(READ_SIZE)) if hasattr(stream, "readinto") else None

    def fill() -> None:
        nonlocal eof
        if scratch is not None:
            n = stream.readinto(scratch)
            chunk = scratch[:n or 0]
        else:
            chunk = stream.read(READ_SIZE)
        if not chunk:
            eof = True
        buf.extend(chunk)

    # Preamble, up to the first delimiter.
    while (start := buf.find(delimiter)) == -1:
        if eof:
            raise BadRequest("empty or malformed multipart body")
        del buf[:max(0, len(buf) - len(delimiter))]
        fill()
    del buf[:start + len(delimiter)]

    while True:
        while len(buf) < 2 and not eof:
            fill()
        if buf[:2] == b"--":
            return  # closing delimiter
        if buf[:2] != b"\r\n":
            raise BadRequest("malformed multipart body")
        del buf[:2]
        while (end := buf.find(b"\r\n\r\n")) == -1:
            if eof or len(buf) > MAX_HEADER_BYTES:
                raise BadRequest("malformed multipart part headers")
            fill()
        label = select(bytes(buf[:end]))
        del buf[:end + 4]
        part = _Part() if label is not None else None
        while len(buf) < len(delimiter) and not eof:
            fill()
        if buf.startswith(delimiter):
            # An empty part: some encoders (werkzeug's among them) let the blank line that ends
            # the headers stand for the CRLF before the delimiter.
            del buf[:len(delimiter)]
            if part is not None:
                yield label, part.done()
            continue
        while (end := buf.find(separator)) == -1:
            if eof:
                raise BadRequest("the upload ended before its last file was complete")
            keep = len(separator) - 1  # a separator may straddle two reads
            if len(buf) > keep:
                if part is not None:
                    part.write(memoryview(buf)[:len(buf) - keep])
                del buf[:len(buf) - keep]
            fill()
        if part is not None:
            part.write(memoryview(buf)[:end])
        del buf[:end + len(separator)]
        if part is not None:
            yield label, part.done()
