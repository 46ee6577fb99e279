"""QIDO-RS: search a case's studies, series and instances; answers are DICOM JSON.

Records are built from the case's index and, for dates and descriptions, from the attributes
of each series' first stored (de-identified) instance, read once and kept in
``dicomweb_series_attrs``. Every query starts from one case's rows, so nothing of another case
can match, whatever the wildcards.
"""

import io
import json
import logging
import re
from dataclasses import dataclass

import pydicom
import sqlalchemy as sa
from flask import current_app
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from app.cases.models import Case
from app.core.errors import BadRequest, NotFound
from app.dicomweb.models import SeriesAttributes
from app.dicomweb.wado import json_of, readable
from app.extensions import db
from app.imaging import service as imaging
from app.imaging.models import Instance, Series, Study

log = logging.getLogger(__name__)

STUDY_KEYWORDS = ("StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "PatientName",
                  "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDescription")
SERIES_KEYWORDS = ("Modality", "SeriesDescription", "SeriesNumber", "SeriesDate", "SeriesTime",
                   "BodyPartExamined", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime")
DEFAULTS = {
    "study": ("StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ModalitiesInStudy",
              "ReferringPhysicianName", "RetrieveURL", "PatientName", "PatientID", "PatientBirthDate",
              "PatientSex", "StudyInstanceUID", "StudyID", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances", "StudyDescription"),
    "series": ("StudyInstanceUID", "Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID",
               "NumberOfSeriesRelatedInstances", "PerformedProcedureStepStartDate",
               "PerformedProcedureStepStartTime", "RetrieveURL"),
    "instance": ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID",
                 "InstanceAvailability", "RetrieveURL", "InstanceNumber", "Rows", "Columns", "NumberOfFrames"),
}
RESERVED = {"limit", "offset", "includefield", "fuzzymatching", "orderby"}
MAX_LIMIT = 10_000
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


def _tag(key: str) -> str:
    """Return the 8-hex-digit tag of a keyword or tag given in a query, or raise BadRequest."""
    if _HEX_TAG.match(key):
        return key.upper()
    tag = tag_for_keyword(key)
    if tag is None:
        raise BadRequest("unknown query attribute", {"attribute": key})
    return f"{tag:08X}"


def element(keyword: str, value) -> dict:
    """Return a DICOM JSON element of the keyword's VR; None or "" gives an empty element."""
    vr = dictionary_VR(tag_for_keyword(keyword))
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [{"Alphabetic": str(v)} for v in values]
    return {"vr": vr, "Value": values}


@dataclass
class Query:
    """A parsed QIDO query: match keys by tag, included fields, paging."""

    match: dict[str, str]
    include: set[str]
    include_all: bool
    limit: int | None
    offset: int


def parse_query(args) -> Query:
    """Parse QIDO query parameters: attribute matches, includefield (comma-joined, repeated, all), paging."""
    include, include_all, match = set(), False, {}
    for raw in args.getlist("includefield"):
        for name in filter(None, (n.strip() for n in raw.split(","))):
            if name.lower() == "all":
                include_all = True
            else:
                include.add(_tag(name))
    for key, values in args.lists():
        if key.lower() in RESERVED:
            continue
        match[_tag(key)] = values[-1]
    return Query(match, include, include_all, _int(args, "limit"), _int(args, "offset") or 0)


def _int(args, name: str) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_LIMIT * 100:
        raise BadRequest(f"invalid {name}", {name: raw})
    return int(raw)


# ---- matching ---------------------------------------------------------------------------------

def _strings(elem: dict | None) -> list[str]:
    if not elem:
        return []
    return [v.get("Alphabetic", "") if isinstance(v, dict) else str(v) for v in elem.get("Value") or []]


def _matches(elem: dict | None, query: str, tag: str) -> bool:
    """Match one attribute the PS3.4 way: universal, UID list, date/time range, wildcard, single value."""
    if query.strip("*") == "":
        return True
    values = _strings(elem)
    vr = (elem or {}).get("vr") or _vr(tag)
    if vr == "UI":
        wanted = {u.strip() for u in re.split(r"[,\\]", query) if u.strip()}
        return any(v in wanted for v in values)
    if vr in ("DA", "TM", "DT") and "-" in query:
        lo, _, hi = query.partition("-")
        return any((not lo or v >= lo) and (not hi or v[:len(hi)] <= hi) for v in values if v)
    fold = vr == "PN"
    if fold:
        query, values = query.lower(), [v.lower() for v in values]
    if "*" in query or "?" in query:
        return any(_wildcard(query, v) for v in values)
    return query in values


def _wildcard(pattern: str, value: str) -> bool:
    """Match ``*`` (any run) and ``?`` (one character) against the whole value, without backtracking.

    A regular expression of ``.*`` runs backtracks exponentially (``*?*?*?*?*?*?X`` against a
    RetrieveURL took a CPU for minutes); this greedy walk returns to the last ``*`` only, so it
    takes at most len(pattern) × len(value) steps.
    """
    p = v = 0
    star, resume = -1, 0
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, v
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", value[v]):
            p += 1
            v += 1
        elif star >= 0:
            resume += 1
            p, v = star + 1, resume
        else:
            return False
    return pattern[p:].strip("*") == ""


def _vr(tag: str) -> str:
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"


def _select(records: list[dict], q: Query, level: str) -> list[dict]:
    found = [r for r in records if all(_matches(r.get(tag), value, tag) for tag, value in q.match.items())]
    found = found[q.offset:]
    if q.limit is not None:
        found = found[:q.limit]
    keep = {f"{tag_for_keyword(k):08X}" for k in DEFAULTS[level]} | q.include | set(q.match)
    return [{tag: r[tag] for tag in sorted(r) if q.include_all or tag in keep} for r in found]


def to_json(records: list[dict]) -> str:
    """Serialise records as a DICOM JSON array."""
    return json.dumps(records, separators=(",", ":"), ensure_ascii=False)


# ---- records ----------------------------------------------------------------------------------
#
# A case's index only grows (instances, series and studies are inserted, never changed or deleted
# one by one), so its study and series records are built once and kept per process, with the
# index's fingerprint: the number of instances, the highest instance id and the highest series id
# of the case. Every search reads the fingerprint (one indexed query) and rebuilds the records when
# it differs, so an instance stored by any process (upload, STOW, C-STORE) shows at once.

_instances, _series, _studies, _attrs = (m.__table__ for m in (Instance, Series, Study, SeriesAttributes))
_CASE = sa.bindparam("case_id")
_FINGERPRINT = sa.select(
    sa.func.count(_instances.c.id), sa.func.max(_instances.c.id),
    sa.select(sa.func.max(_series.c.id)).where(_series.c.case_id == _CASE).scalar_subquery(),
).where(_instances.c.case_id == _CASE)
# Each series with its study UID, its instance count and its cached attributes, in display order.
_COUNTS = (sa.select(_instances.c.series_id, sa.func.count().label("n")).where(_instances.c.case_id == _CASE)
           .group_by(_instances.c.series_id).subquery())
_INDEX = (sa.select(_series.c.id, _series.c.study_id, _studies.c.study_uid, _series.c.series_uid, _series.c.modality,
                    _series.c.series_number, sa.func.coalesce(_COUNTS.c.n, 0).label("n"), _attrs.c.attrs)
          .join_from(_series, _studies, _series.c.study_id == _studies.c.id)
          .outerjoin(_COUNTS, _COUNTS.c.series_id == _series.c.id)
          .outerjoin(_attrs, _attrs.c.series_id == _series.c.id)
          .where(_series.c.case_id == _CASE)
          .order_by(_series.c.series_number.is_(None), _series.c.series_number, _series.c.id))
_ATTR_TAGS = tuple(tag_for_keyword(k) for k in STUDY_KEYWORDS + SERIES_KEYWORDS)
CACHED_CASES = 512  # (case, root) pairs whose records a process keeps


def _by_keyword(attrs: dict[str, dict], keywords) -> dict[str, dict]:
    tags = {f"{tag_for_keyword(k):08X}" for k in keywords}
    return {t: v for t, v in attrs.items() if t in tags}


def _read_attrs(series_id: int) -> dict[str, dict] | None:
    """Read the study and series attributes from the series' first stored instance."""
    inst = db.session.scalar(sa.select(Instance).where(Instance.series_id == series_id).order_by(Instance.id).limit(1))
    if inst is None:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(imaging.instance_bytes(inst)), stop_before_pixels=True)
    except (NotFound, InvalidDicomError, OSError, ValueError, EOFError):
        log.warning("cannot read the attributes of a stored instance (series id %s)", series_id)
        return None
    sub = Dataset()
    # One unreadable value (a SeriesNumber of letters) is left out, not every search of the case failed.
    for tag, elem in readable(ds, _ATTR_TAGS):
        sub[tag] = elem
    return json_of(sub)


def _series_attrs(case_id: int, series_ids: list[int], cached: dict[int, dict]) -> dict[int, dict[str, dict]]:
    """Return the attributes of each series: the cached ones, the missing ones read and stored."""
    fresh = {}
    for sid in series_ids:
        if sid not in cached and (attrs := _read_attrs(sid)) is not None:
            fresh[sid] = attrs
    if fresh:
        try:
            db.session.add_all(SeriesAttributes(series_id=sid, case_id=case_id, attrs=a) for sid, a in fresh.items())
            db.session.commit()
        except sa.exc.IntegrityError:
            db.session.rollback()  # another request stored the same attributes first
    return {**cached, **fresh}


@dataclass(frozen=True)
class _SeriesRecord:
    id: int
    study_uid: str
    series_uid: str
    record: dict


@dataclass(frozen=True)
class CaseRecords:
    """A case's study and series records (as answered under one root), as of an index fingerprint."""

    fingerprint: tuple
    studies: list[dict]
    series: list[_SeriesRecord]
    complete: bool  # every series' attributes could be read (otherwise not kept)


def _element_of(keyword: str, value) -> tuple[str, dict]:
    return f"{tag_for_keyword(keyword):08X}", element(keyword, value)


def _build(case_id: int, root: str, fingerprint: tuple) -> CaseRecords:
    rows = db.session.execute(_INDEX, {"case_id": case_id}).all()
    attrs = _series_attrs(case_id, [r.id for r in rows], {r.id: r.attrs for r in rows if r.attrs is not None})
    by_study: dict[int, list] = {}
    for r in rows:
        by_study.setdefault(r.study_id, []).append(r)
    studies = {sid: _study_record(members, attrs, root) for sid, members in sorted(by_study.items())}
    series = [_SeriesRecord(r.id, r.study_uid, r.series_uid, _series_record(r, studies[r.study_id], attrs, root))
              for r in rows]
    return CaseRecords(fingerprint, list(studies.values()), series, complete=all(r.id in attrs for r in rows))


def _study_record(series: list, attrs: dict[int, dict], root: str) -> dict:
    study_uid = series[0].study_uid
    first = next((attrs[s.id] for s in series if s.id in attrs), {})
    modalities = sorted({s.modality for s in series if s.modality})
    record = dict(_element_of(k, None) for k in STUDY_KEYWORDS)
    record.update(_by_keyword(first, STUDY_KEYWORDS))
    record.update(_element_of(kw, value) for kw, value in (
        ("StudyInstanceUID", study_uid), ("ModalitiesInStudy", modalities),
        ("NumberOfStudyRelatedSeries", len(series)), ("NumberOfStudyRelatedInstances", sum(s.n for s in series)),
        ("InstanceAvailability", "ONLINE"), ("RetrieveURL", f"{root}/studies/{study_uid}")))
    return record


def _series_record(series, study_record: dict, attrs: dict[int, dict], root: str) -> dict:
    record = {t: v for t, v in study_record.items() if keyword_for_tag(int(t, 16)) not in (
        "RetrieveURL", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "ModalitiesInStudy")}
    record.update(_element_of(k, None) for k in SERIES_KEYWORDS)
    record.update(_by_keyword(attrs.get(series.id, {}), SERIES_KEYWORDS))
    record.update(_element_of(kw, value) for kw, value in (
        ("SeriesInstanceUID", series.series_uid), ("Modality", series.modality),
        ("SeriesNumber", series.series_number), ("NumberOfSeriesRelatedInstances", series.n),
        ("RetrieveURL", f"{root}/studies/{series.study_uid}/series/{series.series_uid}")))
    return record


def _instance_record(inst: Instance, series: _SeriesRecord, root: str) -> dict:
    record = {t: v for t, v in series.record.items() if keyword_for_tag(int(t, 16)) not in (
        "RetrieveURL", "NumberOfSeriesRelatedInstances")}
    record.update(_element_of(kw, value) for kw, value in (
        ("SOPClassUID", inst.sop_class_uid), ("SOPInstanceUID", inst.sop_instance_uid),
        ("InstanceNumber", inst.instance_number), ("Rows", inst.rows), ("Columns", inst.columns),
        ("NumberOfFrames", inst.frames), ("InstanceAvailability", "ONLINE"),
        ("RetrieveURL", f"{root}/studies/{series.study_uid}/series/{series.series_uid}"
                        f"/instances/{inst.sop_instance_uid}")))
    return record


def case_records(case_id: int, root: str) -> CaseRecords:
    """Return the case's study and series records under this root: kept ones if the index is unchanged."""
    memo = current_app.extensions["qido_records"]
    # The fingerprint is read before the index: records built after it are at least as new.
    fingerprint = tuple(db.session.execute(_FINGERPRINT, {"case_id": case_id}).one())
    kept = memo.get((case_id, root))
    if kept is not None and kept.fingerprint == fingerprint:
        return kept
    records = _build(case_id, root, fingerprint)
    if records.complete:
        memo.put((case_id, root), records)
    return records


def search_studies(case_id: int, q: Query, *, root: str) -> list[dict]:
    """Return the case's studies matching the query, as DICOM JSON records."""
    if "00080060" in q.match:  # Modality at the study level means ModalitiesInStudy
        q.match.setdefault("00080061", q.match.pop("00080060"))
    return _select(case_records(case_id, root).studies, q, "study")


def search_series(case_id: int, q: Query, *, root: str, study_uid: str | None = None) -> list[dict]:
    """Return the case's series (of one study if given) matching the query."""
    records = [s.record for s in case_records(case_id, root).series if study_uid is None or s.study_uid == study_uid]
    return _select(records, q, "series")


def search_instances(case_id: int, q: Query, *, root: str, study_uid: str | None = None,
                     series_uid: str | None = None) -> list[dict]:
    """Return the case's instances (of one study or series if given) matching the query."""
    series = {s.id: s for s in case_records(case_id, root).series
              if (study_uid is None or s.study_uid == study_uid) and (series_uid is None or s.series_uid == series_uid)}
    if not series:
        return []
    records = [_instance_record(i, series[i.series_id], root)
               for i in imaging.list_instances(db.session.get(Case, case_id)) if i.series_id in series]
    return _select(records, q, "instance")
