"""HTTP details of DICOMweb: lenient Accept parsing, multipart/related bodies, the public base URL."""

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from flask import Response, current_app, request

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


def _split_on(text: str, sep: str) -> Iterator[str]:
    """Split on a separator that is not inside quotes."""
    start, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            yield text[start:i]
            start = i + 1
    yield text[start:]


def parse_media_type(value: str | None) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; a=b; c="d"`` leniently: bare values may hold slashes (``type=application/dicom``)."""
    head, *params = _split_on(value or "", ";")
    options = {}
    for param in params:
        key, _, val = param.partition("=")
        if key.strip():
            options[key.strip().lower()] = val.strip().strip('"')
    return head.strip().lower(), options


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header leniently (quoted or bare ``type``, ``transfer-syntax=*``), best first."""
    ranges = []
    for item in _split_on(header or "", ","):
        if not item.strip():
            continue
        mimetype, options = parse_media_type(item)
        try:
            q = float(options.get("q", 1))
        except ValueError:
            q = 1.0
        if q <= 0:
            continue
        ranges.append(MediaRange(mimetype, (options.get("type") or "").lower() or None,
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
    app = current_app._get_current_object()

    def body() -> Iterator[bytes]:
        # Parts are read from the store while the answer streams, after the request context is gone;
        # the app context is held only while a part is read, never across a yield.
        items = iter(parts)
        while True:
            with app.app_context():
                item = next(items, None)
            if item is None:
                break
            yield f"--{boundary}\r\nContent-Type: {item[0]}\r\n\r\n".encode()
            yield item[1]
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    response = Response(body(), direct_passthrough=True)
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
