"""Upload ingest: classify each file by content, de-identify DICOM, store, index, all or nothing.

The request's files are prepared one at a time (parse, validate, de-identify, serialise) while
up to a few objects are being written to the store in parallel, so memory holds only the files
in flight, never a whole study. Rows are written only after every object is stored; if anything
fails, the objects this request stored are deleted and nothing is recorded.

Who commits: in every other service the route owns the transaction (services flush, routes
commit). ``ingest`` alone commits, because one upload spans two systems: only the code that
stored the objects can delete them when the database refuses the rows, so the commit and that
clean-up live together here. Its caller must not hold uncommitted work in the session.
"""

import hashlib
import io
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import pydicom
import sqlalchemy as sa
from flask import current_app
from pydicom.errors import InvalidDicomError
from sqlalchemy.dialects import postgresql, sqlite

from app.accounts.models import User
from app.cases.models import Case
from app.core.errors import Conflict
from app.extensions import db
from app.imaging import attachments as photos
from app.imaging import dicom
from app.imaging.archive import Entry, Rejected, expand
from app.imaging.deid import deidentify
from app.imaging.dicom import RejectedFile
from app.imaging.models import Attachment, Instance, Series, Study, UidMap
from app.storage import ObjectStore, StorageUnavailable, case_key, get_store

log = logging.getLogger(__name__)

PUT_WORKERS = 4
MAX_IN_FLIGHT = 8


@dataclass
class Prepared:
    """A file ready to store: its bytes and what the index will record."""

    filename: str
    kind: str  # dicom | image | document
    data: io.BytesIO
    size: int
    content_type: str
    facts: dicom.IndexFacts | None = None
    uid_map: dict[str, str] = field(default_factory=dict)
    key: str = ""
    sha256: str = ""
    source_sha256: str = ""  # of the bytes as uploaded, before de-identification


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
    head = stream.read(1024)
    stream.seek(0)
    if not head:
        raise RejectedFile("empty file")
    if dicom.looks_like_dicom(head):
        return _prepare_dicom(name, stream, case)
    kind = photos.sniff(head)
    if kind in ("jpeg", "png"):
        data, ctype = photos.clean_photo(stream.read(), kind)
        return Prepared(name, "image", io.BytesIO(data), len(data), ctype)
    if kind == "pdf":
        data = stream.read()
        photos.check_pdf(data)
        return Prepared(name, "document", io.BytesIO(data), len(data), "application/pdf")
    # DICOM written without the Part 10 preamble still happens (old modalities, some CD exports).
    try:
        ds = pydicom.dcmread(stream, force=True)
        if any(str(ds.get(n, "")).strip() for n in dicom.REQUIRED_UIDS):
            stream.seek(0)
            return _prepare_dicom(name, stream, case, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise RejectedFile("unsupported file type: expected DICOM, JPEG, PNG, PDF or ZIP")


def _prepare_dicom(name: str, stream: BinaryIO, case: Case, force: bool = False) -> Prepared:
    if force:
        try:
            ds = pydicom.dcmread(stream, force=True)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            raise RejectedFile(f"unreadable DICOM file: {type(exc).__name__}") from exc
        ds.ensure_file_meta()
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "")
    else:
        ds = dicom.read_dataset(stream)
    dicom.validate(ds)
    uid_map = deidentify(ds, secret=case.uid_secret, pseudonym=f"HUIZHEN^CASE{case.id}")
    facts = dicom.index_facts(ds)
    try:
        data = dicom.serialise(ds)
    except (ValueError, TypeError, AttributeError) as exc:
        raise RejectedFile(f"cannot write DICOM file: {type(exc).__name__}") from exc
    size = data.getbuffer().nbytes
    return Prepared(name, "dicom", data, size, "application/dicom", facts=facts, uid_map=uid_map)


def ingest(*, case: Case, user: User, files: Iterable[tuple[str, BinaryIO]]) -> IngestResult:
    """Store, index and commit (filename, stream) uploads of a case; 503 and nothing recorded if the store fails.

    files may be a lazy iterator (the request body being read): each file is prepared and
    stored as it arrives. An unreachable store fails the first put at once.
    """
    store = get_store()
    stored = _store_all(case, expand(files, max_total=current_app.config["MAX_CONTENT_LENGTH"] * 4), store)
    try:
        accepted = _record(case, user, stored.items)
        db.session.commit()
    except BaseException as exc:
        db.session.rollback()
        _discard(store, [item.key for item in stored.items])
        if isinstance(exc, sa.exc.IntegrityError):
            raise Conflict("another upload of the same files finished first; send the request again") from exc
        raise
    return IngestResult(accepted=stored.duplicates + accepted, rejected=[r._asdict() for r in stored.rejected])


def _store_all(case: Case, entries: Iterator[Entry | Rejected], store: ObjectStore) -> Stored:
    """Prepare and store every entry, a few puts at a time; if one fails, delete what was stored and re-raise."""
    # What the case already holds, read once: a duplicate is then a set lookup, not a query.
    seen_sops = set(db.session.scalars(sa.select(Instance.sop_instance_uid).where(Instance.case_id == case.id)))
    seen_hashes = set(db.session.scalars(sa.select(Attachment.sha256).where(Attachment.case_id == case.id)))
    stored = Stored([], [], [])
    in_flight: deque[tuple[Prepared, Future]] = deque()
    try:
        with ThreadPoolExecutor(max_workers=PUT_WORKERS, thread_name_prefix="put") as pool:
            try:
                for entry in entries:
                    if in_flight and in_flight[0][1].done():
                        _settle(*in_flight.popleft())  # surface a store failure without waiting
                    if isinstance(entry, Rejected):
                        stored.rejected.append(entry)
                        continue
                    try:
                        item = prepare(entry.filename, entry.stream, case)
                    except RejectedFile as exc:
                        stored.rejected.append(Rejected(entry.filename, str(exc)))
                        continue
                    item.source_sha256 = _source_sha256(entry.stream)
                    if _is_duplicate(item, seen_sops, seen_hashes):
                        stored.duplicates.append(_accepted(item, duplicate=True))
                        continue
                    item.key = case_key(case.id, item.kind, suffix=".dcm" if item.kind == "dicom" else "")
                    stored.items.append(item)
                    in_flight.append((item, pool.submit(_put, store, item)))
                    while len(in_flight) > MAX_IN_FLIGHT:
                        _settle(*in_flight.popleft())
                while in_flight:
                    _settle(*in_flight.popleft())
            except BaseException:
                for _, future in in_flight:
                    future.cancel()
                raise
    except BaseException:
        # The pool has shut down here, so no put is still running when its object is deleted.
        _discard(store, [item.key for item in stored.items])
        raise
    return stored


def _source_sha256(stream: BinaryIO) -> str:
    """Hash the file as the client sent it, so a resuming client can ask whether it is stored."""
    stream.seek(0)
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _put(store: ObjectStore, item: Prepared) -> None:
    obj = store.put(item.key, item.data, item.size, item.content_type)
    item.sha256 = obj.sha256


def _settle(item: Prepared, future: Future) -> None:
    future.result()  # re-raises StorageUnavailable from the worker
    item.data = io.BytesIO()  # release the bytes as soon as they are stored


def _is_duplicate(item: Prepared, seen_sops: set[str], seen_hashes: set[str]) -> bool:
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


def _record(case: Case, user: User, stored: list[Prepared]) -> list[dict]:
    """Add the index rows of the stored files (flushed, not committed) and return their accepted entries."""
    accepted: list[dict] = []
    dicoms = [item.facts for item in stored if item.kind == "dicom"]
    study_ids = _index_rows(Study, "study_uid", case, {
        f.study_uid: {"modality": f.modality} for f in dicoms})
    series_ids = _index_rows(Series, "series_uid", case, {
        f.series_uid: {"study_id": study_ids[f.study_uid], "modality": f.modality, "body_part": f.body_part,
                       "series_number": f.series_number} for f in dicoms})
    uid_map: dict[str, str] = {}
    for item in stored:
        if item.kind != "dicom":
            att = Attachment(case_id=case.id, filename=item.filename, kind=item.kind,
                             content_type=item.content_type, object_key=item.key, size=item.size,
                             sha256=item.sha256, source_sha256=item.source_sha256, uploaded_by_id=user.id)
            db.session.add(att)
            db.session.flush()
            accepted.append(_accepted(item, attachment_id=att.id))
            continue
        f = item.facts
        db.session.add(Instance(
            case_id=case.id, series_id=series_ids[f.series_uid], sop_instance_uid=f.sop_instance_uid,
            sop_class_uid=f.sop_class_uid, transfer_syntax_uid=f.transfer_syntax_uid,
            instance_number=f.instance_number, slice_position=f.slice_position, frames=f.frames,
            rows=f.rows, columns=f.columns, pixel_spacing=f.pixel_spacing, photometric=f.photometric,
            render_error=f.render_error, burned_in_annotation=f.burned_in_annotation,
            object_key=item.key, size=item.size, sha256=item.sha256, source_sha256=item.source_sha256,
            uploaded_by_id=user.id))
        uid_map.update(item.uid_map)
        accepted.append(_accepted(item))
    _insert_missing(UidMap, ("case_id", "original_uid"),
                    [{"case_id": case.id, "original_uid": old, "new_uid": new} for old, new in uid_map.items()])
    db.session.flush()
    return accepted


def _index_rows(model: type[Study] | type[Series], uid: str, case: Case, rows: dict[str, dict]) -> dict[str, int]:
    """Make sure the case has a row per UID (first writer's values win) and return UID → row id.

    Parallel uploads of one series each try to create its study and series rows; insert-or-skip
    then read back lets every one of them use the row whichever committed first.
    """
    if not rows:
        return {}
    _insert_missing(model, ("case_id", uid), [{"case_id": case.id, uid: key, **values} for key, values in rows.items()])
    column = getattr(model, uid)
    return dict(db.session.execute(
        sa.select(column, model.id).where(model.case_id == case.id, column.in_(list(rows)))).all())


def _insert_missing(model: type[db.Model], unique: tuple[str, ...], rows: list[dict]) -> None:
    """Insert the rows whose unique columns are not taken yet, waiting for a concurrent writer of the same."""
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"ingest supports SQLite and PostgreSQL, not {dialect}")
    db.session.execute(insert(model.__table__).on_conflict_do_nothing(index_elements=list(unique)), rows)


def _discard(store: ObjectStore, keys: list[str]) -> None:
    """Delete what a failed request stored; what cannot be deleted now is left for storage-gc."""
    for key in keys:
        try:
            store.delete(key)
        except (StorageUnavailable, OSError):
            log.warning("could not delete an object of a failed upload; `flask storage-gc` will")
            return
