"""DICOM nodes of cases: issue a case's called AE title, admit associations, ingest C-STOREs, summarise.

A C-STORE is answered only after its instance is stored and committed (through the same ingest
as uploads): a Success status tells the sender it may forget the image, so it must be true.
"""

import logging
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from app.accounts.models import User
from app.cases import workflow
from app.cases.models import Case
from app.cases.permissions import Action, available_actions
from app.core.errors import DomainError
from app.extensions import db
from app.imaging import ingest
from app.notifications.service import notify
from app.storage import StorageUnavailable

from .models import DicomNode, DicomPeer

log = logging.getLogger(__name__)

AE_PREFIX = "HZ"
AE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
AE_RANDOM_CHARS = 14  # 16 characters in all, about 72 random bits: not guessable
AE_TITLE = re.compile(r"^[A-Z0-9_]{1,16}$")

# DIMSE status codes (PS3.4 Annex B.2.3, PS3.7 Annex C)
SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110  # Processing failure (PS3.7 Annex C.4)
NOT_AUTHORISED = 0x0124  # Refused: Not Authorized (PS3.7 Annex C.5)
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
# A-ASSOCIATE-RJ diagnostics from the service user (PS3.8 9.3.4)
CALLING_AE_NOT_RECOGNISED = 0x03
CALLED_AE_NOT_RECOGNISED = 0x07


def new_ae_title() -> str:
    """Return a fresh random called AE title (``HZ`` and 14 characters of [A-Z0-9])."""
    return AE_PREFIX + "".join(secrets.choice(AE_ALPHABET) for _ in range(AE_RANDOM_CHARS))


def node_for(*, case: Case, user) -> DicomNode:
    """Return the user's DICOM node for the case, issuing its AE title on first use (flushed, not committed)."""
    node = db.session.scalar(sa.select(DicomNode).where(DicomNode.case_id == case.id,
                                                        DicomNode.created_by_id == user.id))
    if node is None:
        node = DicomNode(case_id=case.id, ae_title=new_ae_title(), created_by_id=user.id)
        db.session.add(node)
        db.session.flush()
    return node


def listener_address() -> tuple[str, int]:
    """Return the host and port senders should use (a wildcard bind advertises PUBLIC_URL's host)."""
    cfg = current_app.config
    host = cfg.get("DICOM_PUBLIC_HOST") or cfg["DICOM_HOST"]
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        host = urlsplit(cfg["PUBLIC_URL"]).hostname or "127.0.0.1"
    return host, int(cfg["DICOM_PORT"])


def takes_images(case: Case | None, holder: User | None) -> bool:
    """Tell whether a case takes images by C-STORE from a node's holder now: the case is open for
    uploads and the holder may still upload to it. Asked at admission and again for each instance."""
    if case is None or holder is None or not holder.active:
        return False
    return Action.UPLOAD in available_actions(holder, case)  # the role's actions, in the case's status


@dataclass(frozen=True)
class Admission:
    """The answer to an association request: the case it reaches, or the A-ASSOCIATE-RJ diagnostic."""

    case_id: int | None = None
    holder_id: int | None = None
    reject_diagnostic: int | None = None


def admit(*, called_ae: str, calling_ae: str) -> Admission:
    """Decide an association: the called AE title must name a case that takes images from this sender."""
    node = db.session.scalar(sa.select(DicomNode).where(DicomNode.ae_title == called_ae.strip()))
    case = db.session.get(Case, node.case_id) if node else None
    # A case that no longer takes uploads, or whose holder left it, is as unknown as a title never issued.
    if not takes_images(case, db.session.get(User, node.created_by_id) if node else None):
        return Admission(reject_diagnostic=CALLED_AE_NOT_RECOGNISED)
    allowed = set(db.session.scalars(sa.select(DicomPeer.ae_title).where(
        DicomPeer.institution_id == case.owner.institution_id)))
    if allowed and calling_ae.strip() not in allowed:
        return Admission(reject_diagnostic=CALLING_AE_NOT_RECOGNISED)
    return Admission(case_id=case.id, holder_id=node.created_by_id)


@dataclass
class Received:
    """What one association delivered into a case, for its timeline summary."""

    case_id: int
    holder_id: int  # whose node the sender called: the instances are theirs
    calling_ae: str
    max_bytes: int  # an instance may be at most this large (MAX_CONTENT_LENGTH when the association began)
    stored: int = 0
    duplicates: int = 0
    reasons: Counter = field(default_factory=Counter)  # rejection reason -> count
    arriving: int = 0  # bytes of the data set now arriving
    cut_off: bool = False  # the association was aborted for an instance too large

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    @property
    def received(self) -> int:
        return self.stored + self.duplicates + self.rejected

    def arrive(self, *, command: bool, size: int) -> bool:
        """Count a fragment of the message arriving; return True once the instance it carries is too large to
        take, which ends the association: the instance is never written to disk beyond MAX_UPLOAD_MB."""
        if command:  # a new message begins
            self.arriving = 0
            return False
        self.arriving += size
        if self.arriving <= self.max_bytes or self.cut_off:
            return False
        self.cut_off = True
        self.reasons[size_refusal(self.max_bytes) + ", association aborted"] += 1
        return True


def size_refusal(max_bytes: int) -> str:
    """The reason given for an instance larger than an upload may be."""
    return f"instance larger than {max_bytes // (1024 * 1024)} MB"


def receive(*, session: Received, stream: BinaryIO, size: int, name: str) -> tuple[int, str | None]:
    """Ingest one C-STORE'd instance (a DICOM file of ``size`` bytes) into the session's case; return
    its DIMSE status and error comment."""
    case, holder = db.session.get(Case, session.case_id), db.session.get(User, session.holder_id)
    status, reason = SUCCESS, None
    # An association may outlive the case's open state (withdrawn or closed meanwhile) and its holder's
    # access (declined, removed): asked each time.
    if not takes_images(case, holder):
        session.reasons["the case no longer takes images"] += 1
        return NOT_AUTHORISED, "the case no longer takes images"
    # Bounded as an upload request is (MAX_UPLOAD_MB), before anything is read.
    if size > session.max_bytes:
        reason = size_refusal(session.max_bytes)
        session.reasons[reason] += 1
        return OUT_OF_RESOURCES, reason
    try:
        # A parallel sender storing the same instance makes it a duplicate here (ingest's insert-or-skip).
        result = ingest.ingest(case=case, user=holder, files=[(name, stream)])
    except StorageUnavailable:
        status, reason = OUT_OF_RESOURCES, "object store unavailable"
    except DomainError as exc:
        if exc.status == 409 and exc.error != "invalid transition":
            raise  # a concurrent sender's rows won (ingest's 409): a processing failure, as before
        # Asked again as the instance is recorded: withdrawn, answered or off the case since the check above.
        status, reason = NOT_AUTHORISED, "the case no longer takes images"
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        # The type only: the database's own message may quote values (PostgreSQL's "Key (...)=(...)").
        log.error("C-STORE could not be recorded: %s", type(exc).__name__)
        status, reason = OUT_OF_RESOURCES, "database unavailable"
    else:
        if result.rejected:
            status, reason = CANNOT_UNDERSTAND, result.rejected[0]["error"]
        elif result.accepted[0]["duplicate"]:
            session.duplicates += 1
        else:
            session.stored += 1
    if status != SUCCESS:
        session.reasons[reason] += 1
    return status, reason


def record_summary(*, session: Received) -> None:
    """Add the association's summary to the case's timeline, as the holder's whose node was called, notify the
    owner, and commit."""
    case = db.session.get(Case, session.case_id)
    if case is None:
        return
    holder = db.session.get(User, session.holder_id) or case.owner
    note = (f"DICOM C-STORE from {session.calling_ae}: {session.received} received, {session.stored} stored, "
            f"{session.duplicates} already present, {session.rejected} rejected")
    workflow.record(case, "dicom_received", actor=holder, note=note, data={
        "calling_ae_title": session.calling_ae, "received": session.received, "stored": session.stored,
        "duplicates": session.duplicates, "rejected": session.rejected,
        "reasons": [{"reason": r, "count": n} for r, n in session.reasons.most_common()]})
    notify(users=[case.owner], case_id=case.id, kind="dicom_received", actor=None)
    db.session.commit()


def allow_peer(*, institution_id: int, ae_title: str) -> DicomPeer:
    """Allow a calling AE title for an institution's cases (flushed, not committed)."""
    ae_title = ae_title.strip().upper()
    if not AE_TITLE.match(ae_title):
        raise ValueError("an AE title is 1 to 16 characters of A-Z, 0-9 and _")
    peer = db.session.scalar(sa.select(DicomPeer).where(
        DicomPeer.institution_id == institution_id, DicomPeer.ae_title == ae_title))
    if peer is None:
        peer = DicomPeer(institution_id=institution_id, ae_title=ae_title)
        db.session.add(peer)
        db.session.flush()
    return peer


def remove_peer(*, institution_id: int, ae_title: str) -> int:
    """Stop allowing a calling AE title for an institution; return how many were removed."""
    result = db.session.execute(sa.delete(DicomPeer).where(
        DicomPeer.institution_id == institution_id, DicomPeer.ae_title == ae_title.strip().upper()))
    return result.rowcount


def peers(*, institution_id: int | None = None) -> list[DicomPeer]:
    """List allowed calling AE titles, of one institution or of all."""
    query = sa.select(DicomPeer).order_by(DicomPeer.institution_id, DicomPeer.ae_title)
    if institution_id is not None:
        query = query.where(DicomPeer.institution_id == institution_id)
    return list(db.session.scalars(query))
