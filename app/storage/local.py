"""The embedded object store: files under UPLOAD_FOLDER."""

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.storage.base import CHUNK, Buffers, HashingReader, StorageFull, StorageUnavailable, StoredObject

IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class LocalStore:
    """Objects as files under a root folder; writes are atomic (temp file, then rename)."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()
        self._root = str(self.root)

    def _path(self, key: str) -> str:
        # Checked on the key's text, not by resolving the path: resolve() stats every component
        # (62 µs a key, on each put). Keys are made by case_key; a '..' or absolute key is refused.
        path = os.path.normpath(os.path.join(self._root, key))
        if not path.startswith(self._root + os.sep):
            raise ValueError("object key escapes the store")
        return path

    def put(self, key: str, stream: BinaryIO | Buffers, size: int, content_type: str, *,
            sha256: str | None = None) -> StoredObject:
        """Write the object to a temp file beside its path and rename it into place.

        Buffers are written as they are (os.writev), never joined; other streams are copied.
        """
        path = self._path(key)
        try:
            fd, tmp = self._temp_file(os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(stream, Buffers):
                        written, sha256 = _write_buffers(out.fileno(), stream.buffers, sha256)
                    else:
                        reader = HashingReader(stream, sha256)
                        shutil.copyfileobj(reader, out, CHUNK)
                        written, sha256 = reader.size, reader.sha256
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(detail="the local store has no space left; ask the operator") from exc
            raise StorageUnavailable(detail=f"local store: {exc.strerror}") from exc
        return StoredObject(key=key, size=written, sha256=sha256)

    @staticmethod
    def _temp_file(folder: str) -> tuple[int, str]:
        """Create a temp file in folder, making the folder only when it is missing (once per case and kind)."""
        try:
            return tempfile.mkstemp(dir=folder, prefix=".part-")
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            return tempfile.mkstemp(dir=folder, prefix=".part-")

    def open(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by chunks()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageUnavailable(detail=f"local store: {exc.strerror}") from exc

        def chunks() -> Iterator[bytes]:
            with handle:
                while data := handle.read(CHUNK):
                    yield data

        return chunks()

    def read(self, key: str) -> bytes:
        return Path(self._path(key)).read_bytes()

    def delete(self, key: str) -> None:
        Path(self._path(key)).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def abort_unfinished(self, prefix: str, *, started_before: datetime) -> list[str]:
        # An unfinished write here is a .part-* temp file, which keys() lists for storage-gc.
        return []

    def keys(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        base = self.root / prefix
        if not base.exists():
            return
        # Temp files (.part-*) left by a crash mid-write are listed too, so storage-gc removes them
        # once older than its grace period; one still being written has a fresh mtime and stays.
        for path in base.rglob("*"):
            if path.is_file():
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
                yield path.relative_to(self.root).as_posix(), modified


def _write_buffers(fd: int, buffers: list, sha256: str | None) -> tuple[int, str]:
    """Write the buffers in order with writev (no join, no chunk copies); return the size and sha256."""
    size = sum(len(b) for b in buffers)
    if not sha256:
        digest = hashlib.sha256()
        for b in buffers:
            digest.update(b)
        sha256 = digest.hexdigest()
    pending = buffers
    while pending:
        written = os.writev(fd, pending[:IOV_MAX])
        if written <= 0:
            raise OSError(errno.EIO, "the local store wrote nothing")
        # A short write (rare on a local file: a signal, a full disk) continues where it stopped.
        done = 0
        while done < len(pending) and written >= len(pending[done]):
            written -= len(pending[done])
            done += 1
        pending = pending[done:]
        if written:
            pending[0] = memoryview(pending[0])[written:]
    return size, sha256
