"""The streaming multipart reader, against bodies built by werkzeug's and requests' encoders."""

import io
import os

import pytest
import requests
from werkzeug.test import EnvironBuilder

from app.core.errors import BadRequest
from app.imaging import multipart, workers


def werkzeug_body(files, extra=None):
    data = {"files": [(io.BytesIO(content), name) for name, content in files], **(extra or {})}
    env = EnvironBuilder(method="POST", data=data, content_type="multipart/form-data").get_environ()
    return env["wsgi.input"].read(), env["CONTENT_TYPE"]


def requests_body(files):
    prepared = requests.Request("POST", "http://x/", files=[("files", (n, c)) for n, c in files]).prepare()
    return prepared.body, prepared.headers["Content-Type"]


def parse(body, content_type, read_size=None, monkeypatch=None):
    if read_size and monkeypatch:
        monkeypatch.setattr(multipart, "READ_SIZE", read_size)
    parts = []
    for name, f in multipart.iter_files(io.BytesIO(body), multipart.boundary_of(content_type)):
        with f:
            parts.append((name, f.read()))
    assert workers.segments_in_use() == 0
    return parts


FILES = [("a.dcm", b"DICM" * 1000), ("空.jpg", b""), ("报告.pdf", b"%PDF-\r\n--not-a-boundary\r\n" * 50),
         ("c.bin", bytes(range(256)) * 40)]


@pytest.mark.parametrize("encoder", [werkzeug_body, requests_body])
@pytest.mark.parametrize("read_size", [7, 64, 256 * 1024])
def test_parts_come_back_byte_for_byte(encoder, read_size, monkeypatch):
    body, ctype = encoder(FILES)
    assert parse(body, ctype, read_size, monkeypatch) == FILES


def test_other_fields_are_skipped(monkeypatch):
    body, ctype = werkzeug_body(FILES[:1], extra={"note": "hello"})
    assert parse(body, ctype) == FILES[:1]


def test_large_parts_spill_to_disk(monkeypatch):
    monkeypatch.setattr(multipart, "SPOOL_MAX", 1000)
    body, ctype = requests_body([("big.dcm", b"x" * 5000)])
    [(name, handle)] = list(multipart.iter_files(io.BytesIO(body), multipart.boundary_of(ctype)))
    assert not isinstance(handle, workers.SharedFile)
    assert handle.read() == b"x" * 5000
    handle.close()
    assert workers.segments_in_use() == 0


def test_a_part_is_written_into_shared_memory_and_handed_over_without_a_copy():
    body, ctype = requests_body([("a.dcm", b"DICM" * 1000)])
    [(name, handle)] = list(multipart.iter_files(io.BytesIO(body), multipart.boundary_of(ctype)))
    assert isinstance(handle, workers.SharedFile)
    assert handle.read(4) == b"DICM"
    handle.seek(0)
    segment = workers.share(handle, 4000)
    assert workers.read_shared(segment.name, 4000) == b"DICM" * 1000
    handle.close()  # closing after share() took the segment gives nothing back twice
    assert workers.segments_in_use() == 1
    workers.release(segment)
    assert workers.segments_in_use() == 0


def test_truncated_body_is_an_error():
    body, ctype = requests_body([("a.dcm", b"x" * 5000), ("b.dcm", b"y" * 5000)])
    parts = multipart.iter_files(io.BytesIO(body[:7000]), multipart.boundary_of(ctype))
    name, first = next(parts)
    assert name == "a.dcm"
    first.close()
    with pytest.raises(BadRequest, match="ended before its last file"):
        next(parts)
    assert workers.segments_in_use() == 0  # the part cut off gave its segment back


@pytest.mark.parametrize("content_type", [None, "application/json", "multipart/form-data"])
def test_a_body_that_is_not_multipart_is_refused(content_type):
    with pytest.raises(BadRequest, match="multipart/form-data"):
        multipart.boundary_of(content_type)


def test_a_part_larger_than_its_first_segment_moves_to_a_larger_one():
    content = os.urandom(3 * workers.SEGMENT_STEP + 17)
    body, ctype = requests_body([("big.dcm", content), ("small.dcm", b"abc")])
    assert parse(body, ctype, 64 * 1024) == [("big.dcm", content), ("small.dcm", b"abc")]


@pytest.mark.parametrize("value", [
    b'form-data; name="files"; filename="IM00001"', b' form-data; name="files"; filename="\xe7\xa9\xba.jpg"',
    b'form-data; name="files"; filename="a\\"b"', b'form-data; name="files"; filename="a%22b"',
    b'form-data; name="note"', b"form-data; name=\"files\"; filename*=UTF-8''%E7%A9%BA.jpg",
    b'form-data; name="files"; filename=""', b'form-data;name="files";filename="x y.dcm"',
    b'form-data; name="files"; filename="C:\\\\dir\\\\a.dcm"', b'Form-Data; Name="files"; filename="b.dcm"',
    b'form-data; name="files"; filename="\xff\xfe.dcm"'])
def test_the_plain_disposition_shortcut_reads_what_werkzeug_reads(value):
    from werkzeug.http import parse_options_header

    _, options = parse_options_header(value.decode("utf-8", "replace"))
    expected = (options.get("name", ""), options.get("filename"))
    assert multipart._disposition(b"Content-Disposition: " + value) == expected
