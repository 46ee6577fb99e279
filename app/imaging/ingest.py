"""Upload ingest: classify each file by content, de-identify DICOM, store, index, all or nothing.

The request's DICOM files are prepared (parse, validate, de-identify, lay out, hash) by a pool of
worker processes (app.imaging.workers) a few files ahead of the request thread, which checks
duplicates and hands up to MAX_IN_FLIGHT files to the put threads the server's uploads share
(app.storage.puts: the oldest request's first), so memory holds only the files in flight, never
a whole study. A file reaches its worker through shared memory, and the
worker sends back only the layout (new header bytes, spans of the source) and the digests of the
source and of the file to store, so the server process neither pickles the file nor hashes it.
A de-identified file is its new header plus the original file's bytes of every unchanged element
(the pixel data above all): it is stored as those pieces, spans of the segment the upload was
written into as it arrived (the local store writes them with one writev), and the segment is
given back once the file is stored. Rows are written only after every object is stored; if
anything fails, the objects this request stored are deleted and nothing is recorded.

Who commits: in every other service the route owns the transaction (services flush, routes
commit). ``ingest`` alone commits, because one upload spans two systems: only the code that
stored the objects can delete them when the database refuses the rows, so the commit and that
clean-up live together here. Its caller must not hold uncommitted work in the session.
"""

import hashlib
import io
import logging
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory
from typing import BinaryIO, NamedTuple

import pydicom
import sqlalchemy as sa
from flask import current_app
from pydicom.errors import BytesLengthException
from sqlalchemy.dialects import postgresql, sqlite

from app.accounts.models import User
from app.cases import workflow
from app.cases.models import Case
from app.cases.permissions import Action, lock_case, require
from app.core.errors import Conflict, Unauthorized
from app.core.time import utcnow
from app.extensions import db
from app.imaging import attachments as photos
from app.imaging import dicom, scan, workers
from app.imaging.archive import Entry, Rejected, expand
from app.imaging.deid import deidentify
from app.imaging.dicom import RejectedFile
from app.imaging.models import Attachment, Instance, Series, Study, UidMap
from app.storage import ObjectStore, StorageUnavailable, case_key, get_store
from app.storage.base import Buffers
from app.storage.puts import put_queue

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8  # puts a request may have waiting or running
PREPARE_AHEAD_PER_WORKER = 2  # files handed to each worker before the request thread waits
POOL_MAX_BYTES = 64 * 1024 * 1024  # larger files are prepared in the request thread (no pipe copies)
# The errors pydicom raises on a malformed file (and ours on the values it gives): decoding a bad
# length (BytesLengthException, OSError), an unknown VR (NotImplementedError), nesting past the
# stack (RecursionError), a value no VR holds (TypeError, ValueError, struct.error), and the rest.
MALFORMED = (OSError, EOFError, ValueError, TypeError, LookupError, AttributeError, ArithmeticError,
             RuntimeError, struct.error, BytesLengthException)


@dataclass
class Prepared:
    """A file ready to store: its bytes and what the index will record."""

    filename: str
    kind: str  # dicom | image | document
    data: io.BytesIO | Buffers  # Buffers: a DICOM file's pieces, spans of its source (which segment holds)
    size: int
    content_type: str
    facts: dicom.IndexFacts | None = None
    uid_map: dict[str, str] = field(default_factory=dict)
    key: str = ""
    sha256: str = ""
    source_sha256: str = ""  # of the bytes as uploaded, before de-identification
    segment: SharedMemory | None = None  # holds the source that data's spans point into, until stored


@dataclass
class IngestResult:
    """The answer to an upload: one entry per accepted file and one per rejected file."""

    accepted: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


class Stored(NamedTuple):
    """What storing a request's files produced, before anything is recorded."""

    items: list[Prepared]  # stored now; to be indexed
    duplicates: list[dict]  # accepted entries of files the case already had
    rejected: list[Rejected]


def prepare(name: str, stream: BinaryIO, case: Case) -> Prepared:
    """Classify a file by its content and make it ready to store, or raise RejectedFile."""
    head = _head(stream)
    if dicom.looks_like_dicom(head):
        return _prepare_dicom(name, stream.read(), case)
    kind = photos.sniff(head)
    if kind in ("jpeg", "png"):
        data, ctype = photos.clean_photo(stream.read(), kind, max_pixels=current_app.config["MAX_FRAME_PIXELS"])
        return Prepared(name, "image", io.BytesIO(data), len(data), ctype)
    # DICOM written without the Part 10 preamble still happens (old modalities, some CD exports).
    # Before the PDF test: an encapsulated PDF's "%PDF-" lies within the first KB of a small
    # header, and taken for a PDF the file would be stored with its patient data.
    if dicom.looks_like_bare_dicom(head):
        return _prepare_dicom(name, stream.read(), case, force=True)
    if kind == "pdf":
        if stream.seek(0, io.SEEK_END) > photos.MAX_PDF_BYTES:  # rewriting one takes about three times its size
            raise RejectedFile(f"PDF too large: at most {photos.MAX_PDF_BYTES >> 20} MB")
        stream.seek(0)
        data = photos.clean_pdf(stream.read())
        return Prepared(name, "document", io.BytesIO(data), len(data), "application/pdf")
    raise RejectedFile("unsupported file type: expected DICOM, JPEG, PNG, PDF or ZIP")


def _head(stream: BinaryIO) -> bytes:
    head = stream.read(1024)
    stream.seek(0)
    if not head:
        raise RejectedFile("empty file")
    return head


class DicomFile(NamedTuple):
    """A prepared DICOM file as a worker sends it back: its layout over the source, and its index facts."""

    pieces: list[dicom.Piece]
    facts: dicom.IndexFacts
    uid_map: dict[str, str]
    sha256: str = ""  # of the file the pieces make (set by prepare_shared)
    source_sha256: str = ""  # of the source (set by prepare_shared)


def prepare_dicom(data: bytes, *, force: bool, secret: str, pseudonym: str,
                  max_frame_pixels: int, max_decoded_bytes: int, fast: bool = True) -> DicomFile:
    """Parse, validate and de-identify a DICOM file, or raise RejectedFile (pure: runs in worker processes).

    A plain Part 10 file takes the fast path (app.imaging.scan); anything else, and every file
    when ``fast`` is False, pydicom's, which is the reference both are tested against.
    """
    if fast and not force:
        scanned = scan.prepare(data, secret=secret, pseudonym=pseudonym, max_frame_pixels=max_frame_pixels,
                               max_decoded_bytes=max_decoded_bytes)
        if scanned is not None:
            return DicomFile(*scanned)
    stage = "cannot be parsed"
    try:
        starts: dict[int, int] = {}
        ds = dicom.read_dataset(io.BytesIO(data), force=force, starts=starts)
        if force:
            ds.ensure_file_meta()
            if "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
        stage = "a value cannot be decoded"
        dicom.validate(ds, max_frame_pixels=max_frame_pixels, max_decoded_bytes=max_decoded_bytes)
        stage = "cannot be de-identified"
        changed: set[int] = set()
        uid_map = deidentify(ds, secret=secret, pseudonym=pseudonym, changed=changed)
        clean_encapsulated_document(ds, changed)
        stage = "a value cannot be decoded"
        facts = dicom.index_facts(ds)
        # PostgreSQL refuses an over-long value with an error for the whole request; refuse the file alone.
        dicom.check_index_fits(facts, uid_map)
        stage = "cannot be written"
        pieces = dicom.layout(ds, source=data, starts=starts, changed=changed)
        if pieces is None:
            pieces = [dicom.serialise(ds).getvalue()]
    except MALFORMED as exc:
        # A hostile or broken file makes pydicom fail in many ways: that file is refused, not the upload.
        # The type only: pydicom's messages quote values, which may be patient data. Nor is exc
        # chained: a worker's exception reaches the server with its whole chain as text.
        log.warning("rejected a DICOM file the pydicom path failed on (%s)", type(exc).__name__)
        raise RejectedFile(f"malformed DICOM file: {stage} ({type(exc).__name__})") from None
    return DicomFile(pieces, facts, uid_map)


ENCAPSULATED_DOCUMENT, ENCAPSULATED_DOCUMENT_LENGTH = scan.ENCAPSULATED_DOCUMENT, 0x00420015
XML_TYPES = ("text/xml", "application/xml")


def clean_encapsulated_document(ds: pydicom.Dataset, changed: set[int]) -> None:
    """Clean a document a DICOM file carries as an uploaded one is, or refuse the file.

    An encapsulated PDF (a scanned report sent by a PACS) keeps only its pages (``clean_pdf``). A
    CDA is XML whose header names the patient: it cannot be cleaned here, so the file is refused.
    Other documents (3D models: STL, OBJ, MTL) are kept as sent.
    """
    element = ds.get(ENCAPSULATED_DOCUMENT)
    if element is None or not element.value:
        return
    value = bytes(element.value)
    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "").strip().lower()
    if mime == "application/pdf" or photos.sniff(value[:1024]) == "pdf":
        try:
            cleaned = photos.clean_pdf(value)
        except RejectedFile as exc:
            raise RejectedFile(f"encapsulated document: {exc}") from None
        ds.EncapsulatedDocument = cleaned + b"\x00" * (len(cleaned) % 2)
        changed.add(ENCAPSULATED_DOCUMENT)
        if ENCAPSULATED_DOCUMENT_LENGTH in ds:
            ds.EncapsulatedDocumentLength = len(cleaned)
            changed.add(ENCAPSULATED_DOCUMENT_LENGTH)
    elif mime in XML_TYPES or value.lstrip()[:1] == b"<":
        raise RejectedFile("encapsulated CDA document: its header names the patient and cannot be "
                           "de-identified; send the report as a PDF")


def prepare_shared(name: str, size: int, **options) -> DicomFile:
    """prepare_dicom of a file in a shared memory segment (workers.share), with both digests (runs in the workers)."""
    source = workers.read_shared(name, size)
    result = prepare_dicom(source, **options)
    view = memoryview(source)
    digest = hashlib.sha256()
    for piece in result.pieces:
        digest.update(piece if isinstance(piece, bytes) else view[piece[0]:piece[1]])
    return result._replace(sha256=digest.hexdigest(), source_sha256=hashlib.sha256(source).hexdigest())


def _dicom_options(case: Case, force: bool) -> dict:
    max_frame_pixels, max_decoded_bytes = dicom.decode_limits()
    return {"force": force, "secret": case.uid_secret, "pseudonym": f"HUIZHEN^CASE{case.id}",
            "max_frame_pixels": max_frame_pixels, "max_decoded_bytes": max_decoded_bytes}


def _prepare_dicom(name: str, data: bytes, case: Case, force: bool = False) -> Prepared:
    return _prepared(name, data, prepare_dicom(data, **_dicom_options(case, force)))


def _prepared(name: str, source: bytes | memoryview, result: DicomFile) -> Prepared:
    """The file a layout makes, as its pieces over source: never joined in the server (see Buffers)."""
    view = memoryview(source)
    data = Buffers([p if isinstance(p, bytes) else view[p[0]:p[1]] for p in result.pieces])
    view.release()
    return Prepared(name, "dicom", data, data.size, "application/dicom", facts=result.facts,
                    uid_map=result.uid_map, sha256=result.sha256,
                    source_sha256=result.source_sha256 or hashlib.sha256(source).hexdigest())


def ingest(*, case: Case, user: User, files: Iterable[tuple[str, BinaryIO]]) -> IngestResult:
    """Store, index and commit (filename, stream) uploads of a case; 503 and nothing recorded if the store fails.

    files may be a lazy iterator (the request body being read): each file is prepared and
    stored as it arrives. An unreachable store fails the first put at once.
    """
    store = get_store()
    entries = expand(files, max_total=current_app.config["MAX_CONTENT_LENGTH"] * 4)
    try:
        stored = _store_all(case, entries, store)
    finally:
        entries.close()  # a failure leaves the file in hand open: closing gives back its shared memory
    try:
        _still_takes_files(case, user)
        accepted, raced = _record(case, user, stored.items)
        db.session.commit()
    except BaseException as exc:
        db.session.rollback()
        _discard(store, [item.key for item in stored.items])
        if isinstance(exc, sa.exc.IntegrityError):
            raise Conflict("another upload of the same files finished first; send the request again") from exc
        raise
    # Files a concurrent upload indexed first are theirs: the copies stored here are nobody's.
    _discard(store, [item.key for item in raced])
    return IngestResult(accepted=stored.duplicates + accepted, rejected=[r._asdict() for r in stored.rejected])


def _still_takes_files(case: Case, user: User) -> None:
    """Check again, with the case row locked until the commit, that the case takes files from the user.

    The request was let in when it began, but an upload can take minutes to arrive: meanwhile the
    opinion may have been signed or the case withdrawn (files then land after the answer, unseen by
    the specialist, the uploader told they were added), or the uploader lost access (a specialist who
    declined, a deactivated account). A transition waits for the lock, so the status read here is
    the one the files land in. Raises the route's own answers: 404 off the case, 409 for the status.
    """
    lock_case(case)
    db.session.refresh(user)
    if not user.active:
        raise Unauthorized(detail="the account is deactivated")
    require(user, case.id, Action.UPLOAD)
    workflow.require_status(case, Action.UPLOAD)


class _Pending(NamedTuple):
    """A file on its way: its preparation (a worker's future, or already done) and the segment holding its bytes."""

    filename: str
    outcome: Future | Prepared | Rejected
    segment: SharedMemory | None = None
    size: int = 0
    pool: workers.WorkerPool | None = None


def _store_all(case: Case, entries: Iterator[Entry | Rejected], store: ObjectStore) -> Stored:
    """Prepare and store every entry, a few puts at a time; if one fails, delete what was stored and re-raise."""
    # What the case already holds, read once: a duplicate is then a set lookup, not a query.
    seen_sops = set(db.session.scalars(sa.select(Instance.sop_instance_uid).where(Instance.case_id == case.id)))
    # The attachments' digests are read when the request's first photo or PDF arrives (most uploads have none).
    seen_hashes = _LazySet(lambda: db.session.scalars(
        sa.select(Attachment.sha256).where(Attachment.case_id == case.id)))
    stored = Stored([], [], [])
    pool = workers.get_pool(current_app.config["INGEST_WORKERS"])
    ahead = PREPARE_AHEAD_PER_WORKER * (pool.size if pool else 0)
    preparing: deque[_Pending] = deque()
    in_flight: deque[tuple[Prepared, Future]] = deque()

    def take(pending: _Pending) -> None:
        """Store a prepared file (the oldest one: results keep the upload's order)."""
        outcome = _outcome(pending, case)
        if isinstance(outcome, Rejected):
            stored.rejected.append(outcome)
            return
        if _is_duplicate(outcome, seen_sops, seen_hashes):
            _let_go(outcome)
            stored.duplicates.append(_accepted(outcome, duplicate=True))
            return
        outcome.key = case_key(case.id, outcome.kind, suffix=".dcm" if outcome.kind == "dicom" else "")
        stored.items.append(outcome)
        in_flight.append((outcome, puts.submit(_put, store, outcome)))
        while len(in_flight) > MAX_IN_FLIGHT:
            _settle(*in_flight.popleft())

    try:
        with put_queue(current_app.config["INGEST_PUT_THREADS"]).batch() as puts:
            try:
                for entry in entries:
                    if in_flight and in_flight[0][1].done():
                        _settle(*in_flight.popleft())  # surface a store failure without waiting
                    preparing.append(_start(entry, case, pool))
                    while preparing and (len(preparing) > ahead or not isinstance(preparing[0].outcome, Future)
                                         or preparing[0].outcome.done()):
                        take(preparing.popleft())
                while preparing:
                    take(preparing.popleft())
                while in_flight:
                    _settle(*in_flight.popleft())
            except BaseException:
                for pending in preparing:
                    if isinstance(pending.outcome, Future):
                        pending.outcome.cancel()
                    if pending.segment is not None:
                        workers.release(pending.segment)
                for _, future in in_flight:
                    future.cancel()
                raise
    except BaseException:
        # The batch has been left here, so no put is still running when its object is deleted
        # or its segment given back (a put that never ran still holds one).
        for item in stored.items:
            _let_go(item)
        _discard(store, [item.key for item in stored.items])
        raise
    return stored


def _start(entry: Entry | Rejected, case: Case, pool: workers.WorkerPool | None) -> _Pending:
    """Begin preparing an entry: DICOM in a worker process when there is a pool, anything else here."""
    if isinstance(entry, Rejected):
        return _Pending(entry.filename, entry)
    try:
        head = _head(entry.stream)
        # The order of prepare(): Part 10 DICOM, then photos and PDFs, then DICOM without a preamble.
        bare = not dicom.looks_like_dicom(head) and photos.sniff(head) is None and dicom.looks_like_bare_dicom(head)
        if pool is not None and (dicom.looks_like_dicom(head) or bare):
            size = entry.stream.seek(0, io.SEEK_END)
            entry.stream.seek(0)
            if size <= POOL_MAX_BYTES:
                try:
                    segment = workers.share(entry.stream, size)
                except workers.SharedMemoryFull:  # no room to hand it over in: prepared here, more slowly
                    entry.stream.seek(0)
                    return _prepared_here(entry.filename, entry.stream, case)
                try:
                    future = pool.submit(prepare_shared, segment.name, size, **_dicom_options(case, bare))
                except BrokenProcessPool:
                    workers.discard_pool(pool)
                    # share() may have taken the stream's own segment: prepare from a copy of it.
                    stream = io.BytesIO(segment.buf[:size])
                    workers.release(segment)
                    return _prepared_here(entry.filename, stream, case)
                except BaseException:
                    workers.release(segment)
                    raise
                else:
                    return _Pending(entry.filename, future, segment, size, pool)
        return _prepared_here(entry.filename, entry.stream, case)
    except RejectedFile as exc:
        return _Pending(entry.filename, Rejected(entry.filename, str(exc)))


def _prepared_here(filename: str, stream: BinaryIO, case: Case) -> _Pending:
    """Prepare a file in the request thread (no pool, a file too large for it, or a pool just broken)."""
    item = prepare(filename, stream, case)
    item.source_sha256 = item.source_sha256 or _source_sha256(stream)
    return _Pending(filename, item)


def _outcome(pending: _Pending, case: Case) -> Prepared | Rejected:
    """Wait for a file's preparation; if its worker died, prepare it here instead."""
    if not isinstance(pending.outcome, Future):
        return pending.outcome
    segment = pending.segment
    try:
        result = pending.outcome.result()
        item = _prepared(pending.filename, segment.buf[:pending.size], result)
        item.segment, segment = segment, None  # the item's pieces point into it: given back once stored
        return item
    except RejectedFile as exc:
        return Rejected(pending.filename, str(exc))
    except BrokenProcessPool:
        # A worker was killed (out of memory, by an operator): the pool is gone with every file
        # it held. Those files are prepared here, and the next file starts a fresh pool.
        log.warning("an ingest worker process died; preparing its files in the server process")
        workers.discard_pool(pending.pool)
        source = bytes(pending.segment.buf[:pending.size])
        try:
            return _prepare_dicom(pending.filename, source, case, force=not dicom.looks_like_dicom(source[:132]))
        except RejectedFile as exc:
            return Rejected(pending.filename, str(exc))
    finally:
        if segment is not None:
            workers.release(segment)


def _source_sha256(stream: BinaryIO) -> str:
    """Hash the file as the client sent it, so a resuming client can ask whether it is stored."""
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _put(store: ObjectStore, item: Prepared) -> None:
    try:
        obj = store.put(item.key, item.data, item.size, item.content_type, sha256=item.sha256 or None)
    finally:
        _let_go(item)  # stored or failed, its bytes are needed no more: the segment goes back at once
    item.sha256 = obj.sha256


def _settle(item: Prepared, future: Future) -> None:
    future.result()  # re-raises StorageUnavailable from the worker


def _let_go(item: Prepared) -> None:
    """Drop a file's bytes once stored (or not to be stored): its views of the segment, then the segment."""
    if isinstance(item.data, Buffers):
        item.data.close()
    item.data = io.BytesIO()
    if item.segment is not None:
        segment, item.segment = item.segment, None
        workers.release(segment)


class _LazySet:
    """A set filled by a query on first use."""

    def __init__(self, load):
        self._load, self._items = load, None

    def _get(self) -> set:
        if self._items is None:
            self._items = set(self._load())
        return self._items

    def __contains__(self, key) -> bool:
        return key in self._get()

    def add(self, key) -> None:
        self._get().add(key)


def _is_duplicate(item: Prepared, seen_sops: set[str], seen_hashes: "set[str] | _LazySet") -> bool:
    """Tell whether the case (or this request) already has the file; remember it if not."""
    if item.kind == "dicom":
        key, seen = item.facts.sop_instance_uid, seen_sops
    else:
        item.sha256 = hashlib.sha256(item.data.getbuffer()).hexdigest()
        key, seen = item.sha256, seen_hashes
    if key in seen:
        return True
    seen.add(key)
    return False


def _accepted(item: Prepared, *, duplicate: bool = False, attachment_id: int | None = None) -> dict:
    entry: dict = {"filename": item.filename, "kind": item.kind, "duplicate": duplicate}
    if item.kind == "dicom":
        f = item.facts
        entry.update(sop_instance_uid=f.sop_instance_uid, series_uid=f.series_uid, study_uid=f.study_uid,
                     modality=f.modality, renderable=f.render_error is None)
        if f.render_error:
            entry["render_error"] = f.render_error
        if f.burned_in_annotation:
            entry["warnings"] = ["BurnedInAnnotation=YES: text in the pixels was not removed"]
    else:
        entry["size"] = item.size
        if attachment_id is not None:
            entry["id"] = attachment_id
    return entry


def _record(case: Case, user: User, stored: list[Prepared]) -> tuple[list[dict], list[Prepared]]:
    """Add the index rows of the stored files (flushed, not committed); return their accepted entries, and the
    files that a concurrent upload indexed first (accepted as duplicates: their stored copies are to go).

    A file's row is inserted unless the case has it (insert-or-skip, waiting on PostgreSQL for a concurrent
    writer of the same row): two uploads of one series racing both succeed, and each file is stored once.
    """
    accepted: list[dict] = []
    raced: list[Prepared] = []
    dicoms = [item.facts for item in stored if item.kind == "dicom"]
    study_ids = _index_rows(Study, "study_uid", case, {
        f.study_uid: {"modality": f.modality} for f in dicoms})
    series_ids = _index_rows(Series, "series_uid", case, {
        f.series_uid: {"study_id": study_ids[f.study_uid], "modality": f.modality, "body_part": f.body_part,
                       "series_number": f.series_number} for f in dicoms})
    uid_map: dict[str, str] = {}
    instances: list[dict] = []
    entries: dict[str, tuple[Prepared, dict]] = {}  # SOP Instance UID -> the file and its accepted entry
    for item in stored:
        if item.kind != "dicom":
            ids = _insert_missing(Attachment, ("case_id", "sha256"), [dict(
                case_id=case.id, filename=item.filename, kind=item.kind, content_type=item.content_type,
                object_key=item.key, size=item.size, sha256=item.sha256, source_sha256=item.source_sha256,
                uploaded_by_id=user.id)], returning=Attachment.__table__.c.id)
            if not ids:  # the same file, uploaded by a concurrent request that indexed it first
                raced.append(item)
            accepted.append(_accepted(item, duplicate=not ids, attachment_id=ids[0] if ids else None))
            continue
        f = item.facts
        instances.append(dict(
            case_id=case.id, series_id=series_ids[f.series_uid], sop_instance_uid=f.sop_instance_uid,
            sop_class_uid=f.sop_class_uid, transfer_syntax_uid=f.transfer_syntax_uid,
            instance_number=f.instance_number, slice_position=f.slice_position, frames=f.frames,
            rows=f.rows, columns=f.columns, pixel_spacing=f.pixel_spacing, photometric=f.photometric,
            render_error=f.render_error, burned_in_annotation=f.burned_in_annotation,
            object_key=item.key, size=item.size, sha256=item.sha256, source_sha256=item.source_sha256,
            uploaded_by_id=user.id, created_at=utcnow()))
        uid_map.update(item.uid_map)
        accepted.append(entry := _accepted(item))
        entries[f.sop_instance_uid] = (item, entry)
    if instances:
        # One multi-row INSERT for the request's instances: no ORM objects, no per-row round trip.
        inserted = set(_insert_missing(Instance, ("case_id", "sop_instance_uid"), instances,
                                       returning=Instance.__table__.c.sop_instance_uid))
        for sop in entries.keys() - inserted:
            item, entry = entries[sop]
            entry["duplicate"] = True
            raced.append(item)
    _insert_missing(UidMap, ("case_id", "original_uid"),
                    [{"case_id": case.id, "original_uid": old, "new_uid": new} for old, new in uid_map.items()])
    db.session.flush()
    return accepted, raced


def _index_rows(model: type[Study] | type[Series], uid: str, case: Case, rows: dict[str, dict]) -> dict[str, int]:
    """Make sure the case has a row per UID (first writer's values win) and return UID → row id.

    Parallel uploads of one series each try to create its study and series rows; insert-or-skip
    then read back lets every one of them use the row whichever committed first.
    """
    if not rows:
        return {}
    column = getattr(model, uid)

    def read() -> dict[str, int]:
        return dict(db.session.execute(
            sa.select(column, model.id).where(model.case_id == case.id, column.in_(list(rows)))).all())

    # Most requests of a series add to rows an earlier request made: one read, no insert.
    ids = read()
    missing = [{"case_id": case.id, uid: key, **values} for key, values in rows.items() if key not in ids]
    if not missing:
        return ids
    _insert_missing(model, ("case_id", uid), missing)
    return read()


def _insert_missing(model: type[db.Model], unique: tuple[str, ...], rows: list[dict], *,
                    returning: sa.Column | None = None) -> list:
    """Insert the rows whose unique columns are not taken yet, waiting for a concurrent writer of the same;
    with ``returning``, return that column of the rows inserted."""
    if not rows:
        return []
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"ingest supports SQLite and PostgreSQL, not {dialect}")
    statement = insert(model.__table__).on_conflict_do_nothing(index_elements=list(unique))
    if returning is None:
        db.session.execute(statement, rows)
        return []
    return list(db.session.scalars(statement.returning(returning), rows))


def _discard(store: ObjectStore, keys: list[str]) -> None:
    """Delete what a failed request stored; what cannot be deleted now is left for storage-gc."""
    for key in keys:
        try:
            store.delete(key)
        except (StorageUnavailable, OSError):
            log.warning("could not delete an object of a failed upload; `flask storage-gc` will")
            return
