"""The embedded object store: files under UPLOAD_FOLDER."""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.storage.base import CHUNK, HashingReader, StorageFull, StorageUnavailable, StoredObject


class LocalStore:
    """Objects as files under a root folder; writes are atomic (temp file, then rename)."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError("object key escapes the store")
        return path

    def put(self, key: str, stream: BinaryIO, size: int, content_type: str, *,
            sha256: str | None = None) -> StoredObject:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            reader = HashingReader(stream, sha256)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(reader, out, CHUNK)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(detail="the local store has no space left; ask the operator") from exc
            raise StorageUnavailable(detail=f"local store: {exc.strerror}") from exc
        return StoredObject(key=key, size=reader.size, sha256=reader.sha256)

    def open(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = path.open("rb")
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
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

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
