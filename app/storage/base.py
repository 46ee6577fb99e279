"""The object store interface and the helpers both implementations share."""

import hashlib
import uuid
from collections.abc import Iterator
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
