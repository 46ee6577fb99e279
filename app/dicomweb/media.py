"""HTTP details of DICOMweb: lenient Accept parsing, multipart/related bodies, the public base URL."""

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from flask import Response, request, stream_with_context
from werkzeug.http import parse_options_header

from app.core.errors import DomainError

DICOM_JSON = "application/dicom+json"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~\-]+)*$")


class NotAcceptable(DomainError):
    status = 406
    error = "not acceptable"


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header; for multipart/related, ``type`` names the parts' type."""

    mimetype: str
    type: str | None
    transfer_syntax: str | None
    q: float


def _split(header: str) -> Iterator[str]:
    """Split on commas that are not inside quotes."""
    start, quoted = 0, False
    for i, ch in enumerate(header):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            yield header[start:i]
            start = i + 1
    yield header[start:]


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header leniently (quoted or bare ``type``, ``transfer-syntax=*``), best first."""
    ranges = []
    for item in _split(header or ""):
        if not item.strip():
            continue
        mimetype, options = parse_options_header(item.strip())
        options = {k.lower(): v for k, v in options.items()}
        try:
            q = float(options.get("q", 1))
        except ValueError:
            q = 1.0
        if q <= 0:
            continue
        ranges.append(MediaRange(mimetype.lower(), (options.get("type") or "").lower() or None,
                                 options.get("transfer-syntax") or None, q))
    ranges.sort(key=lambda r: -r.q)
    return ranges or [MediaRange("*/*", None, None, 1.0)]


def matches(pattern: str | None, mimetype: str) -> bool:
    """Tell whether a media range (``*/*``, ``image/*``, exact, or none) covers the mimetype."""
    if pattern in (None, "*/*", "*"):
        return True
    major, _, minor = pattern.partition("/")
    return pattern == mimetype or (minor == "*" and mimetype.startswith(major + "/"))


def accepts_json() -> bool:
    """Tell whether the request accepts DICOM JSON (application/json and */* count)."""
    return any(r.mimetype in (DICOM_JSON, "application/json", "*/*", "application/*")
               for r in parse_accept(request.headers.get("Accept")))


def require_json() -> None:
    """Raise 406 unless DICOM JSON is acceptable."""
    if not accepts_json():
        raise NotAcceptable(detail={"supported": [DICOM_JSON]})


def json_response(payload: str, status: int = 200) -> Response:
    """Answer DICOM JSON text with exactly ``application/dicom+json`` (clients compare it whole)."""
    response = Response(payload, status=status)
    response.headers["Content-Type"] = DICOM_JSON
    return response


def multipart_response(parts: Iterable[tuple[str, bytes]], part_type: str) -> Response:
    """Stream (content type, bytes) parts as multipart/related with a random boundary."""
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        for content_type, data in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
            yield data
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    # Parts are read from the store while the answer streams, so the app context must stay.
    response = Response(stream_with_context(body()), direct_passthrough=True)
    response.headers["Content-Type"] = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return response


def _first(name: str) -> str:
    return (request.headers.get(name) or "").split(",")[0].strip()


def public_base() -> str:
    """Return the scheme://host[/prefix] clients reached us at, honouring X-Forwarded-Proto/Host/Prefix."""
    proto = _first("X-Forwarded-Proto").lower()
    if proto not in ("http", "https"):
        proto = request.scheme
    host = _first("X-Forwarded-Host")
    if not _HOST.match(host):
        host = request.host
    prefix = _first("X-Forwarded-Prefix").rstrip("/")
    if not _PREFIX.match(prefix):
        prefix = ""
    return f"{proto}://{host}{prefix}{request.script_root}"
