"""STOW-RS: store instances sent as multipart/related; each goes through the upload ingest path.

So a stored instance is validated, de-identified (its UIDs replaced consistently within the case),
put in the object store and indexed exactly as an upload is; one already in the case is not
stored again. The answer is the PS3.18 Store Instances Response in DICOM JSON.
"""

from dataclasses import dataclass, field
from typing import BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError

from app.accounts.models import User
from app.cases.models import Case
from app.core.errors import BadRequest, DomainError
from app.dicomweb.media import parse_media_type
from app.dicomweb.qido import element
from app.imaging import dicom, ingest, multipart
from app.imaging.deid import derive_uid

# PS3.18 Table 10.5.3-1 / PS3.4 failure reasons.
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH = 0xA900  # e.g. an instance of another study posted to …/studies/{study}
PROCESSING_FAILURE = 0x0110


class UnsupportedMediaType(DomainError):
    status = 415
    error = "unsupported media type"


@dataclass
class _Sent:
    """What the client sent in one part, as it named it (its own UIDs)."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    failure: int | None = None


@dataclass
class StowResult:
    """The stored instances (as stored: de-identified UIDs) and the failed ones (as sent)."""

    referenced: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)

    @property
    def status(self) -> int:
        if not self.failed:
            return 200
        return 202 if self.referenced else 409


def boundary_of(content_type: str | None) -> bytes:
    """Return the boundary of a multipart/related body of DICOM parts; 415 for another media type."""
    mimetype, options = parse_media_type(content_type)
    part_type = (options.get("type") or "application/dicom").lower()
    if mimetype != "multipart/related" or part_type != "application/dicom":
        raise UnsupportedMediaType(detail={"expected": 'multipart/related; type="application/dicom"',
                                           "content_type": content_type})
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadRequest("multipart/related without a boundary", {"content_type": content_type})
    return boundary.encode("latin-1")


def _part_type(headers: bytes) -> str:
    for line in headers.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-type":
            return parse_media_type(value.decode("latin-1"))[0]
    return "application/dicom"


def _inspect(stream: BinaryIO, part_type: str, case: Case, study_uid: str | None) -> _Sent:
    """Read the UIDs the client sent and decide whether the part may go to ingest."""
    sent = _Sent()
    if part_type != "application/dicom":
        sent.failure = CANNOT_UNDERSTAND
        return sent
    head = stream.read(132)
    stream.seek(0)
    if not dicom.looks_like_dicom(head):
        sent.failure = CANNOT_UNDERSTAND
        return sent
    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=True)
        sent.sop_class_uid = str(ds.get("SOPClassUID", "") or "")
        sent.sop_instance_uid = str(ds.get("SOPInstanceUID", "") or "")
        sent_study = str(ds.get("StudyInstanceUID", "") or "")
    except (InvalidDicomError, *ingest.MALFORMED):  # what ingest refuses a file for, a part fails for
        sent.failure = CANNOT_UNDERSTAND
        return sent
    finally:
        stream.seek(0)
    # The study in the URL may be named as the client knows it or as it is stored here.
    if study_uid and study_uid not in (sent_study, derive_uid(case.uid_secret, sent_study)):
        sent.failure = DOES_NOT_MATCH
        return sent
    # A preamble is application data (a dual TIFF/ZIP header, say): ingest must see a plain DICOM file.
    stream.write(b"\x00" * 128)
    stream.seek(0)
    return sent


def store(*, case: Case, user: User, stream: BinaryIO, boundary: bytes, study_uid: str | None,
          retrieve_url) -> StowResult:
    """Store the DICOM parts of a multipart/related body; return what was stored and what failed."""
    sent: dict[str, _Sent] = {}
    result = StowResult()

    def accepted_parts():
        for label, body in multipart.iter_parts(stream, boundary, lambda headers: _part_type(headers)):
            name = f"part-{len(sent) + 1}"
            info = sent[name] = _inspect(body, label, case, study_uid)
            if info.failure is None:
                yield name, body
            else:
                body.close()

    outcome = ingest.ingest(case=case, user=user, files=accepted_parts())
    if not sent:
        raise BadRequest("no instances: send multipart/related parts of type application/dicom")
    stored = {entry["filename"]: entry for entry in outcome.accepted if entry.get("kind") == "dicom"}
    for entry in (stored[name] for name in sent if name in stored):  # in the order they were sent
        result.referenced.append({
            "00081150": element("ReferencedSOPClassUID", sent[entry["filename"]].sop_class_uid),
            "00081155": element("ReferencedSOPInstanceUID", entry["sop_instance_uid"]),
            "00081190": element("RetrieveURL", retrieve_url(entry)),
        })
    for entry in outcome.rejected:
        sent[entry["filename"]].failure = PROCESSING_FAILURE if "cannot write" in entry["error"] else CANNOT_UNDERSTAND
    for info in sent.values():
        if info.failure is not None:
            result.failed.append({
                "00081150": element("ReferencedSOPClassUID", info.sop_class_uid),
                "00081155": element("ReferencedSOPInstanceUID", info.sop_instance_uid),
                "00081197": element("FailureReason", info.failure),
            })
    return result


def response_body(result: StowResult, study_url: str | None) -> dict:
    """Build the Store Instances Response dataset (DICOM JSON)."""
    body: dict = {}
    if study_url:
        body["00081190"] = element("RetrieveURL", study_url)
    if result.failed:
        body["00081198"] = {"vr": "SQ", "Value": result.failed}
    if result.referenced:
        body["00081199"] = {"vr": "SQ", "Value": result.referenced}
    return body

