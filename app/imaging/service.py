"""Reading a case's image index and serving its files and rendered frames."""

import math
from collections.abc import Iterator

import sqlalchemy as sa
from flask import current_app

from app.cases.models import Case
from app.core.errors import BadRequest, DomainError, NotFound
from app.extensions import db
from app.imaging.dicom import frame_size_problem
from app.imaging.models import Attachment, Instance, Series, Study, UidMap
from app.imaging.render import Rendered, RenderError, RenderRequest, render
from app.storage import get_store


class NotRenderable(DomainError):
    status = 422
    error = "instance cannot be rendered"


def _sort_key(inst: Instance):
    # The scanner's instance number first (a localizer's three planes have no common axis),
    # then the position along the slice normal for series that lack numbers.
    return (inst.instance_number is None, inst.instance_number or 0,
            inst.slice_position is None, inst.slice_position or 0.0, inst.id)


def case_studies(case: Case) -> list[dict]:
    """Return the case's studies → series with instance counts, series in series-number order."""
    counts = dict(db.session.execute(
        sa.select(Instance.series_id, sa.func.count()).where(Instance.case_id == case.id)
        .group_by(Instance.series_id)).all())
    studies = list(db.session.scalars(sa.select(Study).where(Study.case_id == case.id).order_by(Study.id)))
    all_series = list(db.session.scalars(
        sa.select(Series).where(Series.case_id == case.id)
        .order_by(Series.series_number.is_(None), Series.series_number, Series.id)))
    out = []
    for study in studies:
        series = [s for s in all_series if s.study_id == study.id]
        out.append({
            "study_uid": study.study_uid,
            "modality": study.modality,
            "series": [{
                "series_uid": s.series_uid, "modality": s.modality, "body_part": s.body_part,
                "series_number": s.series_number, "instance_count": counts.get(s.id, 0),
                "thumbnail": f"/api/cases/{case.id}/series/{s.series_uid}/thumbnail",
            } for s in series],
        })
    return out


def case_attachments(case: Case) -> list[Attachment]:
    """Return the case's attachments, oldest first."""
    return list(db.session.scalars(
        sa.select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.id)))


def list_instances(case: Case, *, series_uid: str | None = None) -> list[Instance]:
    """Return the case's instances (of one series if asked), in display order."""
    stmt = sa.select(Instance).where(Instance.case_id == case.id)
    if series_uid:
        series = db.session.scalar(
            sa.select(Series).where(Series.case_id == case.id, Series.series_uid == series_uid))
        if series is None:
            raise NotFound("series not found")
        stmt = stmt.where(Instance.series_id == series.id)
    instances = list(db.session.scalars(stmt))
    instances.sort(key=lambda i: (i.series_id, *_sort_key(i)))
    return instances


def get_instance(case: Case, sop_instance_uid: str) -> Instance:
    """Return one instance of the case, or raise NotFound."""
    inst = db.session.scalar(
        sa.select(Instance).where(Instance.case_id == case.id, Instance.sop_instance_uid == sop_instance_uid))
    if inst is None:
        raise NotFound("instance not found")
    return inst


# What rendering a frame reads of an instance (rendered_frame, _instance_bytes) and its series' UID
# (the audit row): one query and no ORM object, on the viewer's hot path.
_FRAME_SOURCE = (sa.select(Instance.series_id, Series.series_uid, Instance.sha256, Instance.object_key,
                           Instance.frames, Instance.rows, Instance.columns, Instance.render_error)
                 .join(Series, Series.id == Instance.series_id))


def frame_source(case_id: int, sop_instance_uid: str) -> sa.Row:
    """Return what rendering one of the case's instances needs, or raise NotFound."""
    row = db.session.execute(_FRAME_SOURCE.where(
        Instance.case_id == case_id, Instance.sop_instance_uid == sop_instance_uid)).one_or_none()
    if row is None:
        raise NotFound("instance not found")
    return row


def check_image_refs(case: Case, refs: list) -> None:
    """Raise BadRequest unless every reference (study_uid, series_uid, sop_instance_uid, frame; each optional)
    names images of this case, consistently: a chat message's or an opinion's link to an image must open one."""
    sops = {r.sop_instance_uid for r in refs if r.sop_instance_uid}
    series_uids = {r.series_uid for r in refs if r.series_uid}
    study_uids = {r.study_uid for r in refs if r.study_uid}
    if not (sops or series_uids or study_uids):
        return
    instances = {sop: (series, study, frames) for sop, series, study, frames in db.session.execute(
        sa.select(Instance.sop_instance_uid, Series.series_uid, Study.study_uid, Instance.frames)
        .join(Series, Series.id == Instance.series_id).join(Study, Study.id == Series.study_id)
        .where(Instance.case_id == case.id, Instance.sop_instance_uid.in_(sorted(sops))))} if sops else {}
    series = dict(db.session.execute(
        sa.select(Series.series_uid, Study.study_uid).join(Study, Study.id == Series.study_id)
        .where(Series.case_id == case.id, Series.series_uid.in_(sorted(series_uids)))).all()) if series_uids else {}
    studies = set(db.session.scalars(sa.select(Study.study_uid).where(
        Study.case_id == case.id, Study.study_uid.in_(sorted(study_uids))))) if study_uids else set()
    for i, ref in enumerate(refs):
        found = instances.get(ref.sop_instance_uid) if ref.sop_instance_uid else None
        problem = None
        if ref.sop_instance_uid and found is None:
            problem = "sop_instance_uid names no instance of this case"
        elif ref.series_uid and ref.series_uid not in series:
            problem = "series_uid names no series of this case"
        elif ref.study_uid and ref.study_uid not in studies:
            problem = "study_uid names no study of this case"
        elif found and not (ref.series_uid in (None, found[0]) and ref.study_uid in (None, found[1])):
            problem = "the instance is not in that series or study"
        elif ref.series_uid and ref.study_uid and series[ref.series_uid] != ref.study_uid:
            problem = "the series is not in that study"
        elif ref.frame is not None and found and ref.frame > (found[2] or 1):
            problem = "frame out of range"
        if problem:
            raise BadRequest(f"image reference: {problem}", {"index": i})


def get_attachment(case: Case, attachment_id: int) -> Attachment:
    """Return one attachment of the case, or raise NotFound."""
    att = db.session.scalar(
        sa.select(Attachment).where(Attachment.case_id == case.id, Attachment.id == attachment_id))
    if att is None:
        raise NotFound("attachment not found")
    return att


def stream_object(key: str) -> Iterator[bytes]:
    """Stream a stored object's bytes."""
    try:
        return get_store().open(key)
    except FileNotFoundError as exc:
        raise NotFound("file missing from the object store") from exc


def _instance_bytes(inst: Instance | sa.Row) -> bytes:
    cache = current_app.extensions["instance_cache"]
    data = cache.get(inst.sha256)
    if data is None:
        try:
            data = get_store().read(inst.object_key)
        except FileNotFoundError as exc:
            raise NotFound("file missing from the object store") from exc
        cache.put(inst.sha256, data)
    return data


def instance_bytes(inst: Instance) -> bytes:
    """Return a stored instance's bytes, from the per-process cache when they were read before."""
    return _instance_bytes(inst)


def parse_render_request(args) -> RenderRequest:
    """Validate the rendered endpoint's query (frame, wc, ww, size, format; documented as RenderQuery)."""
    def number(name, cast=float):
        raw = args.get(name)
        if raw in (None, ""):
            return None
        try:
            value = cast(raw)
        except ValueError:
            raise BadRequest(f"invalid {name}", {name: raw}) from None
        if not math.isfinite(value):  # float() reads "nan" and "inf"; a window of NaN is no window
            raise BadRequest(f"invalid {name}", {name: raw})
        return value

    frame = number("frame", int) or 1
    wc, ww = number("wc"), number("ww")
    if (wc is None) != (ww is None):
        raise BadRequest("wc and ww go together", {"wc": wc, "ww": ww})
    if ww is not None and ww <= 0:
        raise BadRequest("ww must be positive", {"ww": ww})
    size = number("size", int)
    if size is not None and not 16 <= size <= 4096:
        raise BadRequest("size must be between 16 and 4096", {"size": size})
    fmt = (args.get("format") or "png").lower().replace("jpg", "jpeg")
    if fmt not in ("png", "jpeg"):
        raise BadRequest("format must be png or jpeg", {"format": fmt})
    return RenderRequest(frame=frame, wc=wc, ww=ww, size=size, fmt=fmt)


def rendered_frame(inst: Instance | sa.Row, req: RenderRequest) -> Rendered:
    """Return the rendered frame and its window, from the cache when it was rendered before.

    ``inst`` is an Instance or a :func:`frame_source` row: only the columns that one selects are read.
    """
    if inst.render_error:
        raise NotRenderable(detail=inst.render_error)
    if not 1 <= req.frame <= inst.frames:
        raise BadRequest("frame out of range", {"frame": req.frame, "frames": inst.frames})
    # Instances indexed before the limit (or under a higher one) are refused before a byte is read.
    limit = current_app.config["MAX_FRAME_PIXELS"]
    too_large = frame_size_problem(inst.rows, inst.columns, limit)
    if too_large:
        raise NotRenderable(detail=too_large)
    cache = current_app.extensions["render_cache"]
    key = (inst.sha256, req)
    data = cache.get(key)
    if data is None:
        try:
            data = render(_instance_bytes(inst), req, max_frame_pixels=limit)
        except RenderError as exc:
            raise NotRenderable(detail=str(exc)) from exc
        cache.put(key, data)
    return data


def series_thumbnail(case: Case, series_uid: str, size: int = 128) -> bytes:
    """Render the middle renderable instance of a series as a small JPEG."""
    instances = [i for i in list_instances(case, series_uid=series_uid) if not i.render_error]
    if not instances:
        raise NotRenderable(detail="the series has no renderable instance")
    middle = instances[len(instances) // 2]
    return rendered_frame(middle, RenderRequest(frame=1 + (middle.frames - 1) // 2, size=size, fmt="jpeg")).data


def stored_files(*, case: Case, sha256: list[str], sop_instance_uids: list[str]) -> tuple[list[str], list[str]]:
    """Return which of the given file hashes (as uploaded) and original SOP Instance UIDs the case holds."""
    hashes = sorted(set(sha256))
    have_sha256: set[str] = set()
    if hashes:
        for model in (Instance, Attachment):
            have_sha256.update(db.session.scalars(sa.select(model.source_sha256).where(
                model.case_id == case.id, model.source_sha256.in_(hashes))))
    have_uids: list[str] = []
    uids = sorted(set(sop_instance_uids))
    if uids:
        # The index holds de-identified UIDs; the case's UID map says which original each one was.
        have_uids = list(db.session.scalars(
            sa.select(UidMap.original_uid)
            .join(Instance, sa.and_(Instance.case_id == UidMap.case_id, Instance.sop_instance_uid == UidMap.new_uid))
            .where(UidMap.case_id == case.id, UidMap.original_uid.in_(uids))))
    return sorted(have_sha256), sorted(have_uids)
