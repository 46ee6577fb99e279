"""Photos and PDFs: recognised by content, with identifying metadata stripped from both."""

import io
import logging
import struct
import zlib

from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

from app.imaging.dicom import RejectedFile

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"
# PNG chunks kept: the image and how to show it (colour, transparency, density, animation).
# Every other chunk goes: text, dates, EXIF (with GPS) and any private chunk an app adds.
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP",
             b"bKGD", b"hIST", b"pHYs", b"acTL", b"fcTL", b"fdAT"}
# JPEG APPn segments kept: APP0 (JFIF), APP2 only for ICC profiles, APP14 (Adobe colour transform).
_JPEG_APP0, _JPEG_APP2, _JPEG_APP14, _JPEG_COM = 0xE0, 0xE2, 0xEE, 0xFE
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
MAX_PIXELS = 64_000_000  # the default of MAX_FRAME_PIXELS; ingest passes the configured value
MAX_PDF_PAGES = 2000
MAX_PDF_BYTES = 256 << 20
# What a page keeps: what it draws and where. Everything else goes: thumbnails, article beads
# (with their own title and author), dates, actions, XMP, private application data, files.
_PDF_PAGE_KEYS = {"/Type", "/Parent", "/Resources", "/MediaBox", "/CropBox", "/BleedBox", "/TrimBox", "/ArtBox",
                  "/Rotate", "/Contents", "/Annots", "/Group", "/UserUnit"}
# Annotations that carry a file or media, or only show another's text: dropped whole.
_PDF_ANNOT_DROP = {"/FileAttachment", "/Sound", "/Movie", "/Screen", "/RichMedia", "/3D", "/Popup"}
# What any other annotation keeps: how it is drawn. Not its author (/T), text (/Contents), dates,
# form field name and value, or actions (a link keeps only a jump within the document).
_PDF_ANNOT_KEYS = {"/Type", "/Subtype", "/Rect", "/AP", "/AS", "/F", "/Border", "/BS", "/BE", "/C", "/IC", "/CA",
                   "/QuadPoints", "/InkList", "/Vertices", "/L", "/LE", "/RD", "/DA", "/Q", "/MK", "/Dest"}
# Dropped from every dictionary and stream a page reaches (images, forms, fonts, patterns, appearances).
_PDF_PRIVATE = ("/Metadata", "/PieceInfo")

log = logging.getLogger(__name__)


def sniff(head: bytes) -> str | None:
    """Return 'jpeg', 'png' or 'pdf' from a file's first bytes, or None."""
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    if PDF_MAGIC in head[:1024]:
        return "pdf"
    return None


def clean_photo(data: bytes, fmt: str, *, max_pixels: int = MAX_PIXELS) -> tuple[bytes, str]:
    """Verify a JPEG/PNG decodes and return it without EXIF, GPS, XMP or text metadata."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            # Pillow only warns below twice its own limit; the size is in the header, so refuse
            # before decoding (and before an EXIF rotation would make a second copy).
            width, height = img.size
            if width * height > max_pixels:
                raise RejectedFile(f"image too large: {width}×{height} pixels,"
                                   f" at most {max_pixels / 1e6:g} megapixels")
            img.load()
            orientation = img.getexif().get(0x0112, 1)
            if img.format not in ("JPEG", "PNG"):
                raise RejectedFile("not a JPEG or PNG image")
            turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
            if turn is not None:
                # Phones record rotation in EXIF; apply it before the EXIF goes, re-encoding once. Not
                # with ImageOps.exif_transpose: it writes the EXIF back, and raises on an entry of an
                # unexpected type (a TypeError, the whole upload a 500) for metadata dropped anyway.
                return _reencode(img.transpose(turn), img.format)
    except Image.DecompressionBombError as exc:  # Pillow's own header check came first
        raise RejectedFile(f"image too large: a decompression bomb, at most {max_pixels / 1e6:g} megapixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RejectedFile(f"damaged or unsupported image: {type(exc).__name__}") from exc
    if fmt == "jpeg":
        return _strip_jpeg(data), "image/jpeg"
    return _strip_png(data), "image/png"


# EXIF orientation (2-8) → the turn that shows the image upright, as ImageOps.exif_transpose applies it.
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _reencode(img: Image.Image, fmt: str) -> tuple[bytes, str]:
    # Pillow writes a JPEG comment (and may write other text) from the image's info: keep only
    # the colour profile.
    img.info = {key: value for key, value in img.info.items() if key == "icc_profile"}
    out = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=95, subsampling=0)
        return out.getvalue(), "image/jpeg"
    img.save(out, "PNG")
    return out.getvalue(), "image/png"


def _strip_jpeg(data: bytes) -> bytes:
    """Drop APPn (except JFIF, ICC, Adobe) and COM segments, wherever they are, and all after the end.

    The compressed image is copied as is. Segments can also sit between the scans of a
    progressive JPEG, and phones append a second image with its own EXIF after the end (MPO):
    the copy stops at the end-of-image marker.
    """
    out = bytearray(data[:2])
    i = 2
    while i + 2 <= len(data):
        if data[i] != 0xFF:
            raise RejectedFile("damaged JPEG: bad marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == _JPEG_EOI:
            out += data[i:i + 2]
            return bytes(out)
        if i + 4 > len(data):
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        segment = data[i:i + 2 + length]
        keep = not (0xE0 <= marker <= 0xEF or marker == _JPEG_COM) or marker in (_JPEG_APP0, _JPEG_APP14) or (
            marker == _JPEG_APP2 and segment[4:16] == b"ICC_PROFILE\x00")
        if keep:
            out += segment
        i += 2 + length
        if marker == _JPEG_SOS:  # the scan's entropy-coded data, up to the next marker
            end = _scan_end(data, i)
            out += data[i:end]
            i = end
    raise RejectedFile("damaged JPEG: no end of image")


def _scan_end(data: bytes, i: int) -> int:
    """Where a scan's entropy-coded data ends: at the first marker that is not a stuffed 0xFF00 or a restart."""
    while (i := data.find(b"\xff", i)) != -1 and i + 1 < len(data):
        following = data[i + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            i += 1 if following == 0xFF else 2
            continue
        return i
    return len(data)


def _strip_png(data: bytes) -> bytes:
    """Keep only the chunks of _PNG_KEEP; they are copied as is."""
    out = bytearray(PNG_MAGIC)
    i = len(PNG_MAGIC)
    while i + 12 <= len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        ctype = data[i + 4:i + 8]
        chunk = data[i:i + 12 + length]
        if len(chunk) < 12 + length or zlib.crc32(chunk[4:8 + length]) != struct.unpack(">I", chunk[-4:])[0]:
            raise RejectedFile("damaged PNG: bad chunk")
        if ctype in _PNG_KEEP:
            out += chunk
        i += 12 + length
        if ctype == b"IEND":
            return bytes(out)
    raise RejectedFile("damaged PNG: no end chunk")


def check_pdf(data: bytes) -> None:
    """Raise RejectedFile unless the bytes look like a complete PDF document."""
    if PDF_MAGIC not in data[:1024]:
        raise RejectedFile("not a PDF document")
    if b"%%EOF" not in data[-2048:]:
        raise RejectedFile("incomplete PDF document (no end-of-file marker)")


def clean_pdf(data: bytes) -> bytes:
    """Return the PDF's pages as a new document, without what else the file carried.

    Only the pages go over, each with what it draws (content, fonts, images, the appearance of
    its annotations): the document information (title, author, subject: a hospital system often
    writes the patient's name there), XMP metadata, embedded files, form fields, document
    JavaScript and open actions, bookmarks and any earlier revision kept by incremental saves are
    left behind, as are annotations' authors, texts and actions. The same PDF always gives the
    same bytes, so a second upload is still a duplicate. A PDF protected only against editing is
    opened and stored unprotected; one that needs a password to open cannot be cleaned and is
    refused. What the pages show (a lab report names its patient) is stored as drawn.
    """
    check_pdf(data)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise RejectedFile("password-protected PDF: remove the password before uploading")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise RejectedFile(f"PDF too long: at most {MAX_PDF_PAGES} pages")
        if not reader.pages:
            raise RejectedFile("damaged PDF: no pages")
        writer = PdfWriter()
        for page in reader.pages:
            # Trimmed before the copy: what the page holds is copied with it, referenced or not.
            _keep_only(page, _PDF_PAGE_KEYS)
            annots = page.get("/Annots")
            if annots is not None:
                page[NameObject("/Annots")] = ArrayObject(
                    a for a in annots.get_object() if _drawn_annotation(a.get_object()))
            _strip_private(page)
            writer.add_page(page)
        writer.metadata = None
        out = io.BytesIO()
        writer.write(out)
    except RejectedFile:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on a malformed or unusual file
        # The type only: none of it is about the patient, but a message may quote the file.
        log.info("PDF refused: %s", type(exc).__name__)
        if isinstance(exc, NotImplementedError):  # e.g. certificate encryption: no password can open it here
            raise RejectedFile("encrypted PDF of a kind that cannot be opened here: remove the protection "
                               "before uploading") from None
        raise RejectedFile("damaged PDF: its structure could not be read") from None
    return out.getvalue()


def _keep_only(entry: DictionaryObject, keys: set[str]) -> None:
    for key in [k for k in entry if k not in keys]:
        del entry[key]


def _drawn_annotation(annot) -> bool:
    """Trim an annotation to how it is drawn; False for one to drop whole."""
    if not isinstance(annot, DictionaryObject) or annot.get("/Subtype") in _PDF_ANNOT_DROP:
        return False
    action = annot.get("/A")
    _keep_only(annot, _PDF_ANNOT_KEYS)
    if action is not None and action.get_object().get("/S") == "/GoTo":  # a jump within the document
        annot[NameObject("/A")] = action
    return True


def _strip_private(root: DictionaryObject) -> None:
    """Drop XMP and private application data from everything the page reaches, at every depth."""
    stack, seen = [root], set()
    while stack:
        item = stack.pop()
        obj = item.get_object() if isinstance(item, IndirectObject) else item
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, DictionaryObject):  # a stream is a dictionary too
            for key in _PDF_PRIVATE:
                obj.pop(key, None)
            stack.extend(v for k, v in obj.items() if k not in ("/Parent", "/P"))  # not back up the tree
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)
