"""Expanding uploads: the archive module's entries and rejections, in upload order, without the app."""

import io
import zipfile

from app.imaging.archive import Entry, Rejected, expand


def zipped(members: dict[str, bytes], *, encrypted: str = "") -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if encrypted:
        # zipfile cannot encrypt: set the "encrypted" flag of the entry's central directory record.
        record = raw.index(b"PK\x01\x02")
        while raw[record + 46:record + 46 + len(encrypted)] != encrypted.encode():
            record = raw.index(b"PK\x01\x02", record + 4)
        raw[record + 8] |= 0x1
    return io.BytesIO(bytes(raw))


def names_and_errors(results):
    # Read each entry as it comes: an uploaded stream is closed once the next one is asked for.
    return [(r.filename, r.error) if isinstance(r, Rejected) else (r.filename, r.stream.read()) for r in results]


def test_members_come_out_in_order_with_rejections_as_values():
    inner = zipped({"a.dcm": b"A"}).getvalue()
    upload = zipped({"CD/1.dcm": b"one", "CD/nested.zip": inner, "CD/locked.dcm": b"x", "__MACOSX/._1": b"fork",
                     "CD/.DS_Store": b"junk", "CD/2.dcm": b"two"}, encrypted="CD/locked.dcm")
    results = expand([("cd.zip", upload), ("photo\\scan.jpg", io.BytesIO(b"jpeg"))], max_total=10_000)
    assert names_and_errors(results) == [
        ("cd.zip/CD/1.dcm", b"one"),
        ("cd.zip/CD/nested.zip", "ZIP inside a ZIP is not supported; upload it separately"),
        ("cd.zip/CD/locked.dcm", "encrypted ZIP entry"),
        ("cd.zip/__MACOSX/._1", "macOS metadata, not a file of the study: skipped"),
        ("cd.zip/CD/.DS_Store", "macOS metadata, not a file of the study: skipped"),
        ("cd.zip/CD/2.dcm", b"two"),
        ("photo/scan.jpg", b"jpeg"),
    ]


def test_a_plain_file_is_one_entry():
    stream = io.BytesIO(b"DICM")
    assert list(expand([("IM1", stream)], max_total=1000)) == [Entry("IM1", stream)]


def test_archive_expanding_past_the_limit_is_rejected_unread():
    upload = zipped({"big.dcm": b"\0" * 5_000_000})
    assert list(expand([("big.zip", upload)], max_total=4 * 1024 * 1024)) == [
        Rejected("big.zip", "ZIP expands beyond the upload limit of 4 MB")]


def test_every_uploaded_stream_is_closed_once_expanded():
    streams = [io.BytesIO(b"one"), zipped({"x.dcm": b"x"})]
    for _ in expand([("one.dcm", streams[0]), ("two.zip", streams[1])], max_total=1000):
        pass
    assert all(s.closed for s in streams)
