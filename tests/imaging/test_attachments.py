"""Photos and PDFs: checked by content, metadata stripped, stored once, downloadable."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.actions import JavaScript
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, FloatObject, NameObject, TextStringObject

from tests.conftest import ApiClient
from tests.imaging.documents import report_pdf
from tests.support.races import just_before

GPS_IFD = 0x8825
XMP_OF_SCAN = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description pdf:Keywords="ZHANG SAN"/>'
               b'</rdf:RDF></x:xmpmeta>')


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


def _exif_with_an_odd_gps_version(orientation) -> bytes:
    """EXIF (little-endian TIFF) with an orientation and a GPS version written as a FLOAT, not BYTEs:
    any reader takes it, but Pillow cannot write it back."""
    if isinstance(orientation, int):
        entry = struct.pack("<HHII", 0x0112, 3, 1, orientation)  # SHORT, in the entry itself
    else:
        entry = struct.pack("<HHII", 0x0112, 3, len(orientation), 50)  # SHORTs, after the GPS IFD
    ifd0 = struct.pack("<H", 2) + entry + struct.pack("<HHII", 0x8825, 4, 1, 38) + struct.pack("<I", 0)
    gps = struct.pack("<H", 1) + struct.pack("<HHI", 0, 11, 1) + struct.pack("<f", 0.0) + struct.pack("<I", 0)
    extra = b"" if isinstance(orientation, int) else struct.pack(f"<{len(orientation)}H", *orientation)
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd0 + gps + extra


@pytest.mark.parametrize(("orientation", "size"), [(6, (48, 64)), ((6, 6), (64, 48))])
def test_a_rotated_photo_with_an_unusual_exif_entry_is_kept_not_a_500(api, case_id, orientation, size):
    """Turning the photo upright went through Pillow's exif_transpose, which writes the EXIF back and
    raised TypeError on an entry of an unexpected type: the whole upload answered 500, every file of it
    lost. (An orientation of two values, which no viewer reads, is left as it is.)"""
    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=_exif_with_an_odd_gps_version(orientation))
    r = post(api, case_id, [(io.BytesIO(out.getvalue()), "odd-exif.jpg"), (io.BytesIO(report_pdf()), "report.pdf")])
    assert r.status_code == 200, r.json
    assert [a["kind"] for a in r.json["accepted"]] == ["image", "document"]
    data = api.get(f"/api/cases/{case_id}/attachments/{r.json['accepted'][0]['id']}").data
    stored = Image.open(io.BytesIO(data))
    assert stored.size == size
    assert len(stored.getexif()) == 0


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
    # A scanner's XMP on the page's image: dropped with the rest of what is not drawn.
    writer = PdfWriter(clone_from=PdfReader(buf))
    xmp = DecodedStreamObject()
    xmp.set_data(XMP_OF_SCAN)
    image = next(iter(writer.pages[0]["/Resources"]["/XObject"].values())).get_object()
    image[NameObject("/Metadata")] = writer._add_object(xmp)
    out = io.BytesIO()
    writer.write(out)
    pdf = out.getvalue()
    assert b"ZHANG SAN" in pdf
    accepted = post(api, case_id, [(io.BytesIO(pdf), "化验单.pdf")]).json["accepted"][0]
    assert accepted["kind"] == "document"
    r = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}")
    assert r.mimetype == "application/pdf"
    assert b"ZHANG SAN" not in r.data
    served = PdfReader(io.BytesIO(r.data))
    assert len(served.pages) == 1
    assert served.metadata is None  # Pillow's title, creator and dates are gone
    page = served.pages[0]
    assert [float(x) for x in page.mediabox] == [0, 0, 20, 20]  # as drawn (Pillow: 72 dpi)
    assert page.images[0].image.size == (20, 20)
    case = api.get(f"/api/cases/{case_id}").json
    assert case["attachments"] == [{"id": accepted["id"], "filename": "化验单.pdf", "kind": "document",
                                    "size": len(r.data), "content_type": "application/pdf",
                                    "url": f"/api/cases/{case_id}/attachments/{accepted['id']}"}]


def test_pdf_keeps_its_pages_but_not_the_patient_data_beside_them(api, case_id):
    """Hospital systems write the patient's name into a report's title, subject and XMP, and may
    attach files: only the pages are stored. Served back, the same text; nowhere the name."""
    original = report_pdf(pages=3, patient="ZHANG SAN")
    source = PdfReader(io.BytesIO(original))
    assert "ZHANG SAN" in source.metadata.title
    assert source.attachments
    assert b"ZHANG SAN" in original
    accepted = post(api, case_id, [(io.BytesIO(original), "report.pdf")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    assert b"ZHANG SAN" not in data
    served = PdfReader(io.BytesIO(data))
    assert served.metadata is None
    assert served.xmp_metadata is None
    assert served.attachments == {}
    assert [p.extract_text() for p in served.pages] == [p.extract_text() for p in source.pages]
    # The same PDF again is the same stored document: a duplicate, not a second attachment.
    again = post(api, case_id, [(io.BytesIO(original), "report (1).pdf")]).json["accepted"][0]
    assert again["duplicate"] is True
    assert len(api.get(f"/api/cases/{case_id}").json["attachments"]) == 1


def test_pdf_scripts_and_file_annotations_are_dropped(api, case_id):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf())))
    writer.add_open_action(JavaScript("app.alert('ZHANG SAN');"))
    writer.add_attachment("history.txt", b"ZHANG SAN, born 1961")
    stream = DecodedStreamObject()
    stream.set_data(b"ZHANG SAN notes")
    name = NameObject
    writer.add_annotation(0, DictionaryObject({
        name("/Type"): name("/Annot"), name("/Subtype"): name("/FileAttachment"),
        name("/Rect"): ArrayObject([FloatObject(v) for v in (10, 10, 30, 30)]),
        name("/FS"): DictionaryObject({name("/Type"): name("/Filespec"), name("/F"): TextStringObject("notes.txt"),
                                       name("/EF"): DictionaryObject({name("/F"): writer._add_object(stream)})})}))
    out = io.BytesIO()
    writer.write(out)
    accepted = post(api, case_id, [(io.BytesIO(out.getvalue()), "report.pdf")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    served = PdfReader(io.BytesIO(data))
    assert b"ZHANG SAN" not in data
    assert b"/JavaScript" not in data
    assert "/Names" not in served.trailer["/Root"]
    assert served.pages[0].get("/Annots", []) == []
    assert "Hemoglobin" in served.pages[0].extract_text()


def test_pdf_protected_against_editing_is_stored_open_but_one_needing_a_password_is_refused(api, case_id):
    def encrypted(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf(patient="ZHANG SAN"))))
        writer.encrypt(user_password=user_password, owner_password="hospital-owner", algorithm="AES-128")
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    r = post(api, case_id, [(io.BytesIO(encrypted("")), "locked.pdf"), (io.BytesIO(encrypted("1234")), "secret.pdf")])
    assert [a["filename"] for a in r.json["accepted"]] == ["locked.pdf"]
    assert r.json["rejected"] == [{"filename": "secret.pdf",
                                   "error": "password-protected PDF: remove the password before uploading"}]
    data = api.get(f"/api/cases/{case_id}/attachments/{r.json['accepted'][0]['id']}").data
    served = PdfReader(io.BytesIO(data))
    assert not served.is_encrypted
    assert served.metadata is None
    assert "Hemoglobin" in served.pages[0].extract_text()


@pytest.mark.parametrize(("data", "name", "reason"), [
    (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "slide.jpg", "damaged or unsupported image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "ecg.png", "damaged or unsupported image"),
    (b"GIF89a" + b"\x00" * 64, "scan.gif", "unsupported file type"),
    (b"just some text", "report.pdf", "unsupported file type"),
    (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "empty.pdf", "damaged PDF"),
    (b"%PDF-1.7\n" + b"(\x00\xff garbage) " * 200 + b"\n%%EOF\n", "garbled.pdf", "damaged PDF"),
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


def test_pdf_over_the_limits_is_refused_and_nothing_else_is_lost(api, case_id, monkeypatch):
    """The limits lowered so the test stays small: 256 MB and 2,000 pages in production."""
    from app.imaging import attachments

    kept = post(api, case_id, [(io.BytesIO(report_pdf(text="kept")), "kept.pdf")]).json["accepted"][0]
    monkeypatch.setattr(attachments, "MAX_PDF_BYTES", 1 << 20)
    monkeypatch.setattr(attachments, "MAX_PDF_PAGES", 2)
    big = report_pdf(pages=2) + b"%" + b"0" * (1 << 20) + b"\n%%EOF\n"
    r = post(api, case_id, [(io.BytesIO(report_pdf(pages=3)), "long.pdf"), (io.BytesIO(big), "big.pdf"),
                            (io.BytesIO(report_pdf(pages=2)), "ok.pdf")])
    assert r.json["rejected"] == [{"filename": "long.pdf", "error": "PDF too long: at most 2 pages"},
                                  {"filename": "big.pdf", "error": "PDF too large: at most 1 MB"}]
    assert [a["filename"] for a in r.json["accepted"]] == ["ok.pdf"]
    names = [a["filename"] for a in api.get(f"/api/cases/{case_id}").json["attachments"]]
    assert sorted(names) == ["kept.pdf", "ok.pdf"]
    assert api.get(f"/api/cases/{case_id}/attachments/{kept['id']}").status_code == 200


def _stream(writer: PdfWriter, data: bytes, **entries):
    stream = DecodedStreamObject()
    stream.set_data(data)
    stream.update({NameObject(k): v for k, v in entries.items()})
    return writer._add_object(stream)


def test_pdf_annotations_keep_only_how_they_are_drawn(api, case_id):
    """Authors, notes, form values, scripts, beads and thumbnails on a page carry the patient too."""
    name, text = NameObject, TextStringObject
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf())))
    page = writer.pages[0]
    rect = ArrayObject([FloatObject(v) for v in (10, 10, 60, 30)])
    look = _stream(writer, b"0 0 1 rg 0 0 50 20 re f", **{"/Type": name("/XObject"), "/Subtype": name("/Form"),
                                                        "/BBox": rect, "/Metadata": _stream(writer, XMP_OF_SCAN)})
    appearance = DictionaryObject({name("/N"): look})
    script = DictionaryObject({name("/S"): name("/JavaScript"), name("/JS"): text("app.alert('ZHANG SAN')")})
    for annot in (
        {"/Subtype": name("/Text"), "/T": text("ZHANG SAN"), "/Contents": text("ZHANG SAN, 1961"),
         "/M": text("D:20261201"), "/AP": appearance},
        {"/Subtype": name("/Link"), "/A": script},
        {"/Subtype": name("/Widget"), "/FT": name("/Tx"), "/T": text("patient"), "/V": text("ZHANG SAN"),
         "/AA": DictionaryObject({name("/Fo"): script}), "/AP": appearance},
        {"/Subtype": name("/Popup"), "/Contents": text("ZHANG SAN")},
    ):
        writer.add_annotation(0, DictionaryObject({name("/Type"): name("/Annot"), name("/Rect"): rect,
                                                   **{name(k): v for k, v in annot.items()}}))
    bead = DictionaryObject({name("/Type"): name("/Bead"), name("/R"): rect,
                             name("/T"): DictionaryObject({name("/I"): DictionaryObject(
                                 {name("/Title"): text("ZHANG SAN")})})})
    page[name("/B")] = ArrayObject([writer._add_object(bead)])
    page[name("/Thumb")] = _stream(writer, b"ZHANG SAN thumbnail")
    page[name("/LastModified")] = text("D:20261201")
    out = io.BytesIO()
    writer.write(out)
    original = out.getvalue()
    assert original.count(b"ZHANG SAN") >= 7
    accepted = post(api, case_id, [(io.BytesIO(original), "form.pdf")]).json["accepted"][0]
    data = api.get(f"/api/cases/{case_id}/attachments/{accepted['id']}").data
    assert b"ZHANG SAN" not in data
    assert b"JavaScript" not in data
    served = PdfReader(io.BytesIO(data)).pages[0]
    assert not {"/B", "/Thumb", "/LastModified"} & set(served)
    annots = [a.get_object() for a in served["/Annots"]]
    assert [a["/Subtype"] for a in annots] == ["/Text", "/Link", "/Widget"]  # the popup goes
    assert all(set(a) <= {"/Type", "/Subtype", "/Rect", "/AP", "/P"} for a in annots), [set(a) for a in annots]
    assert annots[0]["/AP"]["/N"].get_data() == b"0 0 1 rg 0 0 50 20 re f"  # still drawn
    assert "Hemoglobin" in served.extract_text()


def test_a_pdf_that_cannot_be_opened_here_is_refused_alone(api, case_id):
    """Certificate encryption (a security handler pypdf lacks) was a 500 that lost the whole upload."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(report_pdf())))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    locked = out.getvalue().replace(b"/Filter /Standard", b"/Filter /PubSec99")
    r = post(api, case_id, [(io.BytesIO(locked), "cert.pdf"), (io.BytesIO(report_pdf()), "ok.pdf")])
    assert r.status_code == 200, r.json
    assert [a["filename"] for a in r.json["accepted"]] == ["ok.pdf"]
    assert r.json["rejected"][0]["filename"] == "cert.pdf"
    assert r.json["rejected"][0]["error"].startswith("encrypted PDF of a kind that cannot be opened here")


def _stored_files(app) -> list:
    return [p for p in Path(app.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file()]


def test_a_photo_arriving_after_the_opinion_is_signed_is_refused_and_not_kept(app, make_case_in_progress, api_as):
    """The upload was let in while the case was being worked on; the opinion was signed before its
    last bytes arrived. It was recorded all the same (200): a photo added after the answer, that the
    specialist never saw, and the doctor told it was part of the case."""
    case_id, ids = make_case_in_progress()
    owner, consultant = api_as(ids["owner"]), api_as(ids["consultant"])

    def sign():
        return ApiClient(app.test_client(), consultant.token).post(
            f"/api/cases/{case_id}/opinion", json={"diagnosis": "良性", "recommendations": "随访"}).status_code

    # Signed while the request reads what the case holds: after it was let in, before anything is recorded.
    with just_before(app, "SELECT attachments.sha256", sign) as (answers, fired):
        r = post(owner, case_id, [(io.BytesIO(photo("JPEG")), "late.jpg")])
    assert fired
    assert answers == [200]
    assert r.status_code == 409, r.json
    assert r.json["detail"]["status"] == "answered"
    assert owner.get(f"/api/cases/{case_id}").json["attachments"] == []
    assert _stored_files(app) == []  # its stored copy deleted


def test_an_upload_of_a_specialist_who_lost_the_case_meanwhile_is_not_kept(app, make_user, make_case, api_as):
    """A specialist uploads to a case shared with them; the owner withdraws it before the upload ends."""
    owner_id, specialist_id = make_user(), make_user(specialty="gynecology")
    owner, specialist = api_as(owner_id), api_as(specialist_id)
    case_id = make_case(owner_id)
    assert owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id}).status_code == 200

    def withdraw():
        return ApiClient(app.test_client(), owner.token).post(f"/api/cases/{case_id}/withdraw").status_code

    with just_before(app, "SELECT attachments.sha256", withdraw) as (answers, fired):
        r = post(specialist, case_id, [(io.BytesIO(report_pdf()), "report.pdf")])
    assert fired
    assert answers == [200]
    assert r.status_code == 404, r.json
    assert owner.get(f"/api/cases/{case_id}").json["attachments"] == []
    assert _stored_files(app) == []
