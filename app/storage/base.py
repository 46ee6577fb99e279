"""The object store interface and the helpers both implementations share."""

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from app.core.errors import ServiceUnavailable

CHUNK = 1024 * 1024


class StorageUnavailable(ServiceUnavailable):
    """The object store cannot be reached; nothing was recorded."""

    error = "object store unavailable"


class StorageFull(StorageUnavailable):
    """The object store has no room left (ENOSPC, a quota); nothing was recorded."""

    status = 507
    error = "object store full"


@dataclass(frozen=True)
class StoredObject:
    """What the database keeps about a stored object."""

    key: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    """Where case files live. Keys are opaque and never contain patient data."""

    def put(self, key: str, stream: BinaryIO, size: int, content_type: str, *,
            sha256: str | None = None) -> StoredObject:
        """Store size bytes read from stream under key, streaming, and return its digest.

        A caller that already hashed the bytes passes their ``sha256``: the store then does not
        hash them again and returns that digest.
        """

    def open(self, key: str) -> Iterator[bytes]:
        """Yield the object's bytes in chunks."""

    def read(self, key: str) -> bytes:
        """Return the whole object (for small objects: one DICOM instance, a rendered frame)."""

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    def exists(self, key: str) -> bool:
        """Tell whether the object exists."""

    def keys(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """Yield (key, last modified, naive UTC) for every object under prefix."""

    def abort_unfinished(self, prefix: str, *, started_before: datetime) -> list[str]:
        """Abort uploads under prefix begun before started_before and never finished; return their keys."""


CASES_PREFIX = "cases/"


def case_prefix(case_id: int) -> str:
    """Return the key prefix under which every object of one case is stored."""
    return f"{CASES_PREFIX}{case_id}/"


def case_key(case_id: int, kind: str, *, suffix: str = "") -> str:
    """Return a fresh random key for a case's object of the given kind: ``cases/<id>/<kind>/<random>``."""
    return f"{case_prefix(case_id)}{kind}/{uuid.uuid4().hex}{suffix}"


class HashingReader:
    """Wrap a stream so its sha256 (unless already known) and length are computed while it is read once."""

    def __init__(self, stream: BinaryIO, sha256: str | None = None):
        self._stream = stream
        self._known = sha256
        self._hash = None if sha256 else hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if self._hash is not None:
            self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._known or self._hash.hexdigest()


class Buffers:
    """An object's bytes as buffers in order (bytes, memoryviews), read as a stream or written as they are.

    A de-identified DICOM file is its new header bytes plus spans of the uploaded file, which
    sits in shared memory until it is stored: LocalStore writes the spans themselves
    (``os.writev``), so the file is never joined in memory; any other store reads it as a stream.
    """

    def __init__(self, buffers: Iterable[bytes | memoryview]):
        self.buffers = [b for b in buffers if len(b)]
        self.size = sum(len(b) for b in self.buffers)
        self._index = 0  # the buffer read() is in, and how far into it
        self._offset = 0

    def read(self, n: int = -1) -> bytes:
        out = []
        want = self.size if n is None or n < 0 else n
        while want > 0 and self._index < len(self.buffers):
            buffer = self.buffers[self._index]
            piece = memoryview(buffer)[self._offset:self._offset + want]
            out.append(piece)
            want -= len(piece)
            self._offset += len(piece)
            if self._offset == len(buffer):
                self._index, self._offset = self._index + 1, 0
        return b"".join(out)

    def close(self) -> None:
        """Let go of the buffers: views of shared memory must be released before their segment is."""
        for buffer in self.buffers:
            if isinstance(buffer, memoryview):
                buffer.release()
        self.buffers = []
