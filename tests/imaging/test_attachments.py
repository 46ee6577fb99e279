"""Photos and PDFs: checked by content, metadata stripped, stored once, downloadable."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

GPS_IFD = 0x8825


def photo(fmt: str, *, exif: bool = True, orientation: int = 1) -> bytes:
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB")
    out = io.BytesIO()
    if fmt == "JPEG":
        ex = Image.Exif()
        if exif:
            ex[0x010F] = "PhoneMaker"
            ex[0x0112] = orientation
            ex[0x013B] = "Dr. Zhang San"  # Artist
            ex.get_ifd(GPS_IFD).update({1: "N", 2: (28.0, 11.0, 0.0), 3: "E", 4: (112.0, 58.0, 0.0)})
        img.save(out, "JPEG", quality=90, exif=ex.tobytes() if exif else b"", comment=b"patient Zhang San")
    else:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Author", "Dr. Zhang San")
        info.add_itxt("Comment", "患者 张三")
        img.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def post(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")


def test_jpeg_photo_loses_exif_and_gps_but_keeps_its_pixels(api, case_id):
    raw = photo("JPEG")
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(GPS_IFD)
    r = post(api, case_id, [(io.BytesIO(raw), "slide.JPG")])
    accepted = r.json["accepted"][0]
    assert accepted["kind"] == "image"
    stored = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}")
    assert stored.status_code == 200
    assert stored.mimetype == "image/jpeg"
    img = Image.open(io.BytesIO(stored.data))
    assert len(img.getexif()) == 0
    assert b"Zhang San" not in stored.data
    assert b"PhoneMaker" not in stored.data
    # Metadata segments were cut out; the compressed image itself was not re-encoded.
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(io.BytesIO(raw))))


def test_rotated_phone_photo_is_turned_upright(api, case_id):
    raw = photo("JPEG", orientation=6)  # rotate 90° clockwise to display
    accepted = post(api, case_id, [(io.BytesIO(raw), "film.jpg")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    img = Image.open(io.BytesIO(data))
    assert img.size == (48, 64)
    assert len(img.getexif()) == 0
    assert b"Zhang San" not in data  # re-encoded to turn it: the JPEG comment is not carried over


def test_png_text_chunks_are_stripped(api, case_id):
    raw = photo("PNG")
    accepted = post(api, case_id, [(io.BytesIO(raw), "ecg.png")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    assert b"Zhang San" not in data
    assert "张三".encode() not in data
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(raw))))


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", 2 + len(body)) + body


def test_metadata_between_the_scans_or_after_the_end_of_a_jpeg_is_stripped(api, case_id):
    """A progressive JPEG may hold segments between its scans; phones append a second image (MPO) after the end."""
    rng = np.random.default_rng(8)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB").save(out, "JPEG", progressive=True)
    progressive = out.getvalue()
    second_scan = progressive.index(b"\xff\xda", progressive.index(b"\xff\xda") + 2)
    hidden = _segment(0xFE, b"PATIENT ZHANG SAN 1972") + _segment(0xE1, b"Exif\x00\x00ARTIST ZHANG SAN")
    raw = progressive[:second_scan] + hidden + progressive[second_scan:] + photo("JPEG")  # + a trailer with GPS
    accepted = post(api, case_id, [(io.BytesIO(raw), "wound.jpg")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    for text in (b"ZHANG SAN", b"Zhang San", b"PhoneMaker", b"Exif"):
        assert text not in data
    assert data.endswith(b"\xff\xd9")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(progressive))))


def test_only_the_image_chunks_of_a_png_are_kept(api, case_id):
    """A private chunk an app adds (here "prVt") is dropped like the text ones."""
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(9).integers(0, 255, (8, 8, 3), dtype=np.uint8), "RGB").save(out, "PNG")
    png = out.getvalue()
    body = b"prVt" + b"PATIENT ZHANG SAN MRN 123"
    private = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    at = png.index(b"IDAT") - 4
    accepted = post(api, case_id, [(io.BytesIO(png[:at] + private + png[at:]), "chart.png")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    assert b"ZHANG SAN" not in data
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(png))))


def test_pdf_is_accepted_and_served_back(api, case_id):
    img = Image.new("RGB", (20, 20), "white")
    buf = io.BytesIO()
    img.save(buf, "PDF")
    pdf = buf.getvalue()
    accepted = post(api, case_id, [(io.BytesIO(pdf), "化验单.pdf")]).json["accepted"][0]
    assert accepted["kind"] == "document"
    r = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}")
    assert r.data == pdf
    assert r.mimetype == "application/pdf"
    case = api.get(f"/api/cases/{case_id}").json
    assert case["attachments"] == [{"id": accepted["id"], "filename": "化验单.pdf", "kind": "document",
                                    "size": len(pdf), "content_type": "application/pdf",
                                    "url": f"/api/cases/{case_id}/attachments/{accepted['id']}"}]


@pytest.mark.parametrize(("data", "name", "reason"), [
    (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "slide.jpg", "damaged or unsupported image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "ecg.png", "damaged or unsupported image"),
    (b"GIF89a" + b"\x00" * 64, "scan.gif", "unsupported file type"),
    (b"just some text", "report.pdf", "unsupported file type"),
])
def test_files_are_judged_by_content_not_name(api, case_id, data, name, reason):
    r = post(api, case_id, [(io.BytesIO(data), name)])
    assert r.json["accepted"] == []
    assert r.json["rejected"][0]["filename"] == name
    assert r.json["rejected"][0]["error"].startswith(reason)


def test_same_photo_twice_is_one_attachment(api, case_id):
    raw = photo("JPEG")
    post(api, case_id, [(io.BytesIO(raw), "a.jpg")])
    again = post(api, case_id, [(io.BytesIO(raw), "b.jpg")]).json["accepted"][0]
    assert again["duplicate"] is True
    assert len(api.get(f"/api/cases/{case_id}").json["attachments"]) == 1
