"""The embedded store on its own: objects written from buffers as they are, keys kept inside the root."""

import hashlib
import io
import os

import pytest

from app.imaging import workers
from app.storage.base import Buffers
from app.storage.local import IOV_MAX, LocalStore


def test_buffers_are_stored_as_the_bytes_they_make_with_their_digest(tmp_path):
    """A file laid out as new bytes and spans of a shared segment is stored as those bytes joined."""
    source = os.urandom(300_000)
    segment = workers.share(io.BytesIO(source), len(source))
    try:
        view = segment.buf[:len(source)]
        pieces = [b"new header", view[100:200_000], b"", b"changed element", view[200_500:]]
        data = Buffers(pieces)
        expected = b"new header" + source[100:200_000] + b"changed element" + source[200_500:]
        assert data.size == len(expected)
        obj = LocalStore(str(tmp_path)).put("cases/1/dicom/a.dcm", data, data.size, "application/dicom")
        data.close()
        view.release()
    finally:
        workers.release(segment)
    assert (tmp_path / "cases/1/dicom/a.dcm").read_bytes() == expected
    assert obj.size == len(expected)
    assert obj.sha256 == hashlib.sha256(expected).hexdigest()
    assert workers.segments_in_use() == 0
    assert not list((tmp_path / "cases/1/dicom").glob(".part-*"))


def test_more_buffers_than_one_writev_takes_are_all_written(tmp_path):
    pieces = [bytes([i % 251]) * (i % 7 + 1) for i in range(IOV_MAX * 2 + 5)]
    obj = LocalStore(str(tmp_path)).put("cases/1/dicom/b.dcm", Buffers(pieces), 0, "application/dicom",
                                        sha256="known")
    assert (tmp_path / "cases/1/dicom/b.dcm").read_bytes() == b"".join(pieces)
    assert obj.sha256 == "known"  # a digest the caller passes is trusted, not recomputed


def test_buffers_read_as_a_stream_in_any_chunk_size():
    """What a store that streams (S3) reads: the same bytes, whatever the part size."""
    pieces = [b"abc", memoryview(b"0123456789")[2:8], b"", b"xyz"]
    for n in (1, 2, 4, 100, -1):
        data, out = Buffers(pieces), b""
        while chunk := data.read(n):
            out += chunk
        assert out == b"abc234567xyz"


@pytest.mark.parametrize("key", ["../outside.dcm", "cases/../../outside.dcm", "/etc/passwd", "", "."])
def test_keys_that_leave_the_store_are_refused(tmp_path, key):
    store = LocalStore(str(tmp_path / "store"))
    with pytest.raises(ValueError, match="escapes the store"):
        store.put(key, io.BytesIO(b"x"), 1, "application/octet-stream")
    assert not (tmp_path / "outside.dcm").exists()
