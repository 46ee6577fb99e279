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
import sqlalchemy.orm as so
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from app.cases.models import Case
from app.core.errors import BadRequest, NotFound
from app.dicomweb.models import SeriesAttributes
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
    if not raw.isdigit() or int(raw) > MAX_LIMIT * 100:
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
    if "*" in query or "?" in query:
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in query)
        rx = re.compile(pattern, re.IGNORECASE | re.DOTALL if fold else re.DOTALL)
        return any(rx.fullmatch(v) for v in values)
    if fold:
        return any(v.lower() == query.lower() for v in values)
    return query in values


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

def _by_keyword(attrs: dict[str, dict], keywords) -> dict[str, dict]:
    tags = {f"{tag_for_keyword(k):08X}" for k in keywords}
    return {t: v for t, v in attrs.items() if t in tags}


def _read_attrs(series: Series) -> dict[str, dict] | None:
    """Read the study and series attributes from the series' first stored instance."""
    inst = db.session.scalar(sa.select(Instance).where(Instance.series_id == series.id).order_by(Instance.id).limit(1))
    if inst is None:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(imaging.instance_bytes(inst)), stop_before_pixels=True)
    except (NotFound, InvalidDicomError, OSError, ValueError, EOFError):
        log.warning("cannot read the attributes of a stored instance (series id %s)", series.id)
        return None
    sub = Dataset()
    for kw in STUDY_KEYWORDS + SERIES_KEYWORDS:
        if kw in ds:
            sub[kw] = ds[kw]
    return sub.to_json_dict()


def _series_attrs(case: Case, all_series: list[Series], cached: dict[int, dict]) -> dict[int, dict[str, dict]]:
    """Return the attributes of each series: the cached ones, the missing ones read and stored."""
    missing = [s for s in all_series if s.id not in cached]
    fresh = {}
    for s in missing:
        attrs = _read_attrs(s)
        if attrs is not None:
            fresh[s.id] = attrs
    if fresh:
        try:
            db.session.add_all(SeriesAttributes(series_id=sid, case_id=case.id, attrs=a) for sid, a in fresh.items())
            db.session.commit()
        except sa.exc.IntegrityError:
            db.session.rollback()  # another request stored the same attributes first
    return {**cached, **fresh}


@dataclass
class _Index:
    studies: list[Study]
    series: list[Series]
    counts: dict[int, int]
    attrs: dict[int, dict[str, dict]]


def _load(case: Case, study_uid: str | None, series_uid: str | None) -> _Index:
    # One query: each series with its study, its instance count and its cached attributes.
    counts = (sa.select(Instance.series_id, sa.func.count().label("n")).where(Instance.case_id == case.id)
              .group_by(Instance.series_id).subquery())
    stmt = (sa.select(Series, sa.func.coalesce(counts.c.n, 0), SeriesAttributes.attrs)
            .join(Study, Series.study_id == Study.id)
            .outerjoin(counts, counts.c.series_id == Series.id)
            .outerjoin(SeriesAttributes, SeriesAttributes.series_id == Series.id).where(Series.case_id == case.id)
            .options(so.contains_eager(Series.study))  # the study from the join above, not joined again
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id))
    if study_uid:
        stmt = stmt.where(Study.study_uid == study_uid)
    if series_uid:
        stmt = stmt.where(Series.series_uid == series_uid)
    rows = db.session.execute(stmt).all()
    series = [s for s, _, _ in rows]
    studies = sorted({s.study.id: s.study for s in series}.values(), key=lambda st: st.id)
    cached = {s.id: attrs for s, _, attrs in rows if attrs is not None}
    return _Index(studies, series, {s.id: n for s, n, _ in rows}, _series_attrs(case, series, cached))


def _study_record(study: Study, series: list[Series], ix: _Index, root: str) -> dict:
    first = next((ix.attrs[s.id] for s in series if s.id in ix.attrs), {})
    modalities = sorted({s.modality for s in series if s.modality})
    record = {f"{tag_for_keyword(k):08X}": element(k, None) for k in STUDY_KEYWORDS}
    record.update(_by_keyword(first, STUDY_KEYWORDS))
    for kw, value in (("StudyInstanceUID", study.study_uid), ("ModalitiesInStudy", modalities),
                      ("NumberOfStudyRelatedSeries", len(series)),
                      ("NumberOfStudyRelatedInstances", sum(ix.counts.get(s.id, 0) for s in series)),
                      ("InstanceAvailability", "ONLINE"), ("RetrieveURL", f"{root}/studies/{study.study_uid}")):
        record[f"{tag_for_keyword(kw):08X}"] = element(kw, value)
    return record


def _series_record(series: Series, study_record: dict, ix: _Index, root: str) -> dict:
    record = {t: v for t, v in study_record.items() if keyword_for_tag(int(t, 16)) not in (
        "RetrieveURL", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "ModalitiesInStudy")}
    record.update({f"{tag_for_keyword(k):08X}": element(k, None) for k in SERIES_KEYWORDS})
    record.update(_by_keyword(ix.attrs.get(series.id, {}), SERIES_KEYWORDS))
    study_uid = series.study.study_uid
    for kw, value in (("SeriesInstanceUID", series.series_uid), ("Modality", series.modality),
                      ("SeriesNumber", series.series_number),
                      ("NumberOfSeriesRelatedInstances", ix.counts.get(series.id, 0)),
                      ("RetrieveURL", f"{root}/studies/{study_uid}/series/{series.series_uid}")):
        record[f"{tag_for_keyword(kw):08X}"] = element(kw, value)
    return record


def _instance_record(inst: Instance, series_record: dict, root: str) -> dict:
    record = {t: v for t, v in series_record.items() if keyword_for_tag(int(t, 16)) not in (
        "RetrieveURL", "NumberOfSeriesRelatedInstances")}
    study_uid, series_uid = inst.series.study.study_uid, inst.series.series_uid
    for kw, value in (("SOPClassUID", inst.sop_class_uid), ("SOPInstanceUID", inst.sop_instance_uid),
                      ("InstanceNumber", inst.instance_number), ("Rows", inst.rows), ("Columns", inst.columns),
                      ("NumberOfFrames", inst.frames), ("InstanceAvailability", "ONLINE"),
                      ("RetrieveURL", f"{root}/studies/{study_uid}/series/{series_uid}"
                                      f"/instances/{inst.sop_instance_uid}")):
        record[f"{tag_for_keyword(kw):08X}"] = element(kw, value)
    return record


def search_studies(case: Case, q: Query, *, root: str) -> list[dict]:
    """Return the case's studies matching the query, as DICOM JSON records."""
    if "00080060" in q.match:  # Modality at the study level means ModalitiesInStudy
        q.match.setdefault("00080061", q.match.pop("00080060"))
    ix = _load(case, None, None)
    records = [_study_record(st, [s for s in ix.series if s.study_id == st.id], ix, root) for st in ix.studies]
    return _select(records, q, "study")


def search_series(case: Case, q: Query, *, root: str, study_uid: str | None = None) -> list[dict]:
    """Return the case's series (of one study if given) matching the query."""
    ix = _load(case, study_uid, None)
    studies = {st.id: _study_record(st, [s for s in ix.series if s.study_id == st.id], ix, root) for st in ix.studies}
    records = [_series_record(s, studies[s.study_id], ix, root) for s in ix.series]
    return _select(records, q, "series")


def search_instances(case: Case, q: Query, *, root: str, study_uid: str | None = None,
                     series_uid: str | None = None) -> list[dict]:
    """Return the case's instances (of one study or series if given) matching the query."""
    ix = _load(case, study_uid, series_uid)
    studies = {st.id: _study_record(st, [s for s in ix.series if s.study_id == st.id], ix, root) for st in ix.studies}
    series = {s.id: _series_record(s, studies[s.study_id], ix, root) for s in ix.series}
    records = [_instance_record(i, series[i.series_id], root)
               for i in imaging.list_instances(case) if i.series_id in series]
    return _select(records, q, "instance")
