"""Reading a multipart upload as a stream: each file is handed on as soon as it has arrived.

Werkzeug's form parser reads the whole body before the view runs; for a study of hundreds of
files over a slow link that wastes the upload time. Here each completed file part is yielded
while the rest of the body is still arriving. The body is read into one reused buffer
(``readinto``, no chunk objects), parts are split with ``bytearray.find`` on the delimiter (fast,
C-level) in place, and a part's bytes go from that buffer straight into a shared memory segment
(workers.SharedFile: the segment its DICOM file is prepared from, with no further copy) up to
SPOOL_MAX, then to a temp file.
"""

import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from werkzeug.http import parse_options_header

from app.core.errors import BadRequest
from app.imaging import workers

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
    """The body of one part: in shared memory while small, in a temp file past SPOOL_MAX.

    When shared memory is full (workers.SharedMemoryFull), a part goes to a temp file instead:
    spooled in memory up to SPOOL_MAX if it could not start in shared memory, on disk if it could
    not grow there.
    """

    def __init__(self):
        try:
            self.file: BinaryIO = workers.SharedFile()
        except workers.SharedMemoryFull:
            self.file = tempfile.SpooledTemporaryFile(SPOOL_MAX)  # noqa: SIM115 - closed by archive.expand
        self.size = 0

    def write(self, data) -> None:
        self.size += len(data)
        if isinstance(self.file, workers.SharedFile):
            if self.size <= SPOOL_MAX:
                try:
                    self.file.write(data)
                    return
                except workers.SharedMemoryFull:
                    pass  # no room to grow: the part so far (unchanged by the failed write) goes to disk
            self._spill()
        self.file.write(data)

    def _spill(self) -> None:
        spilled = tempfile.TemporaryFile()  # noqa: SIM115 - closed by archive.expand after use
        self.file.seek(0)
        shutil.copyfileobj(self.file, spilled, READ_SIZE)
        self.file.close()
        self.file = spilled

    def done(self) -> BinaryIO:
        self.file.seek(0)
        return self.file

    def discard(self) -> None:
        self.file.close()


class _Window:
    """The body as it arrives, in one reused buffer: read in at ``end``, taken from ``start``."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.buf = bytearray(2 * READ_SIZE)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.eof = False

    @property
    def unread(self) -> int:
        return self.end - self.start

    def fill(self) -> None:
        """Read the next chunk, first moving the few unread bytes to the front if the end is near."""
        if self.end + READ_SIZE > len(self.buf):
            unread = bytes(self.view[self.start:self.end])  # a copy: the two ranges may overlap
            if len(unread) + READ_SIZE > len(self.buf):
                self.view.release()
                self.buf = bytearray(len(unread) + READ_SIZE)
                self.view = memoryview(self.buf)
            self.view[:len(unread)] = unread
            self.start, self.end = 0, len(unread)
        target = self.view[self.end:self.end + READ_SIZE]
        if hasattr(self.stream, "readinto"):
            n = self.stream.readinto(target) or 0
        else:
            chunk = self.stream.read(READ_SIZE)
            n = len(chunk)
            target[:n] = chunk
        target.release()
        if not n:
            self.eof = True
        self.end += n

    def find(self, sub: bytes) -> int:
        return self.buf.find(sub, self.start, self.end)


# What every uploader sends: plain quoted values, nothing to unquote or decode. Anything else
# (escapes, %22, RFC 2231 filename*=, other parameters) goes through werkzeug's parser, which
# costs ~15 µs a part.
_PLAIN_DISPOSITION = re.compile(rb'[ \t]*form-data;[ \t]*name="([^"\\%]*)";[ \t]*filename="([^"\\%]*)"[ \t]*')


def _disposition(headers: bytes) -> tuple[str, str | None]:
    """Return (name, filename) from a part's Content-Disposition header."""
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            if plain := _PLAIN_DISPOSITION.fullmatch(value):
                return plain[1].decode("utf-8", "replace"), plain[2].decode("utf-8", "replace")
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
    """Yield (label, body) for each part that ``select(headers)`` labels (not None), once complete.

    The caller owns each body yielded and must close it (its shared memory goes back then).
    """
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    window = _Window(stream)

    # Preamble, up to the first delimiter.
    while (start := window.find(delimiter)) == -1:
        if window.eof:
            raise BadRequest("empty or malformed multipart body")
        window.start = max(window.start, window.end - len(delimiter))
        window.fill()
    window.start = start + len(delimiter)

    while True:
        while window.unread < 2 and not window.eof:
            window.fill()
        after = window.buf[window.start:window.start + 2]
        if after == b"--":
            return  # closing delimiter
        if after != b"\r\n":
            raise BadRequest("malformed multipart body")
        window.start += 2
        while (end := window.find(b"\r\n\r\n")) == -1:
            if window.eof or window.unread > MAX_HEADER_BYTES:
                raise BadRequest("malformed multipart part headers")
            window.fill()
        label = select(bytes(window.buf[window.start:end]))
        window.start = end + 4
        part = _Part() if label is not None else None
        try:
            _read_body(window, part, delimiter, separator)
        except BaseException:
            if part is not None:
                part.discard()
            raise
        if part is not None:
            yield label, part.done()


def _read_body(window: _Window, part: _Part | None, delimiter: bytes, separator: bytes) -> None:
    """Move a part's body from the window into part (or past it), and the delimiter after it."""
    while window.unread < len(delimiter) and not window.eof:
        window.fill()
    if window.buf.startswith(delimiter, window.start, window.end):
        # An empty part: some encoders (werkzeug's among them) let the blank line that ends
        # the headers stand for the CRLF before the delimiter.
        window.start += len(delimiter)
        return
    keep = len(separator) - 1  # a separator may straddle two reads
    while (end := window.find(separator)) == -1:
        if window.eof:
            raise BadRequest("the upload ended before its last file was complete")
        if window.unread > keep:
            if part is not None:
                part.write(window.view[window.start:window.end - keep])
            window.start = window.end - keep
        window.fill()
    if part is not None:
        part.write(window.view[window.start:end])
    window.start = end + len(separator)
