"""Imaging API: upload files to a case, list instances, download and render them."""

import hashlib

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from app.audit import service as audit_log
from app.cases import workflow
from app.cases.permissions import Action, case_ids_route, case_route
from app.core.errors import BadRequest
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_query
from app.imaging import ingest, multipart
from app.imaging import service as imaging
from app.imaging.schemas import FilesCheckBody, InstanceQuery, RenderQuery, ThumbnailQuery

bp = Blueprint("imaging", __name__, url_prefix="/api/cases/<int:case_id>")

# Stored objects never change (a new upload is a new object), so browsers may keep them.
IMMUTABLE = "private, max-age=86400, immutable"


def _stream(key: str, mimetype: str, size: int, filename: str, etag: str) -> Response:
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    response = Response(imaging.stream_object(key), mimetype=mimetype, direct_passthrough=True)
    response.content_length = size
    response.headers["ETag"] = f'"{etag}"'
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(filename)}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@bp.post("/files")
@case_route(Action.UPLOAD)
@api_doc(responses={200: "per-file accepted and rejected lists", 413: "upload too large",
                    503: "object store unavailable; nothing recorded",
                    507: "object store full; nothing recorded"}, tag="imaging")
def upload_files(case):
    """Upload DICOM files, ZIPs of studies, photos and PDFs (multipart field ``files``)."""
    workflow.require_status(case, Action.UPLOAD)
    boundary = multipart.boundary_of(request.content_type)
    if request.content_length is not None and request.content_length > (current_app.config["MAX_CONTENT_LENGTH"] or 0):
        raise RequestEntityTooLarge()
    # The body is read as a stream: each file is ingested while the next one is still arriving.
    result = ingest.ingest(case=case, user=current_user, files=multipart.iter_files(request.stream, boundary))
    if not result.accepted and not result.rejected:
        raise BadRequest("no files: send multipart/form-data with one or more 'files' fields")
    return jsonify({"accepted": result.accepted, "rejected": result.rejected})


@bp.post("/files/check")
@case_route(Action.UPLOAD)
@api_doc(body=FilesCheckBody, responses={200: "which of the given files the case already holds"}, tag="imaging")
def check_files(case):
    """Tell a resuming uploader which of its files (sha256 as sent, original SOP Instance UID) are stored."""
    body = parse_body(FilesCheckBody)
    have_sha256, have_uids = imaging.stored_files(case=case, sha256=body.sha256,
                                                  sop_instance_uids=body.sop_instance_uids)
    return jsonify({"have_sha256": have_sha256, "have_sop_instance_uids": have_uids})


@bp.get("/instances")
@case_route(Action.VIEW_IMAGES)
@api_doc(query=InstanceQuery, responses={200: "instances in display order"}, tag="imaging")
def list_instances(case):
    """List the case's DICOM instances, optionally of one series, in display order."""
    instances = imaging.list_instances(case, series_uid=parse_query(InstanceQuery).series_uid)
    return jsonify({"items": [_instance_json(case.id, i) for i in instances]})


def _instance_json(case_id: int, inst) -> dict:
    return {
        "sop_instance_uid": inst.sop_instance_uid,
        "series_uid": inst.series.series_uid,
        "study_uid": inst.series.study.study_uid,
        "instance_number": inst.instance_number,
        "slice_position": inst.slice_position,
        "frames": inst.frames,
        "rows": inst.rows,
        "columns": inst.columns,
        "pixel_spacing": [float(v) for v in inst.pixel_spacing.split("\\")] if inst.pixel_spacing else None,
        "renderable": inst.render_error is None,
        "render_error": inst.render_error,
        "rendered": f"/api/cases/{case_id}/instances/{inst.sop_instance_uid}/rendered",
    }


@bp.get("/instances/<sop>/file")
@case_route(Action.DOWNLOAD)
@api_doc(responses={200: "the de-identified DICOM file (application/dicom)"}, tag="imaging")
def instance_file(case, sop: str):
    """Download one stored, de-identified DICOM instance."""
    inst = imaging.get_instance(case, sop)
    return _stream(inst.object_key, "application/dicom", inst.size, f"{sop}.dcm", inst.sha256)


@bp.get("/instances/<sop>/rendered")
@case_ids_route(Action.VIEW_IMAGES, audit="view_images")
@api_doc(query=RenderQuery,
         responses={200: "image/png or image/jpeg of the frame; X-Window-Center/-Width: the window used",
                    422: "the instance cannot be rendered"}, tag="imaging")
def instance_rendered(case_id: int, user_id: int, sop: str):
    """Render one frame (``frame``, 1-based) with an optional window (``wc``, ``ww``) and ``size``."""
    inst = imaging.frame_source(case_id, sop)
    # Scrolling a series fetches hundreds of frames: one audit row per user, case and series.
    audit_log.record_once(key=(user_id, case_id, inst.series_id), user_id=user_id, case_id=case_id,
                          action="view_images", detail={"series_uid": inst.series_uid})
    req = imaging.parse_render_request(request.args)
    etag = hashlib.sha256(f"{inst.sha256}|{req}".encode()).hexdigest()
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"'})
    rendered = imaging.rendered_frame(inst, req)
    headers = {"ETag": f'"{etag}"', "Cache-Control": IMMUTABLE}
    if rendered.window:  # the window used (the file's own unless one was asked for): the viewer drags from it
        headers["X-Window-Center"], headers["X-Window-Width"] = (str(float(v)) for v in rendered.window)
    return Response(rendered.data, mimetype=f"image/{req.fmt}", headers=headers)


@bp.get("/series/<series_uid>/thumbnail")
@case_route(Action.VIEW_IMAGES, audit="none")
@api_doc(query=ThumbnailQuery, responses={200: "image/jpeg thumbnail of the series' middle slice"}, tag="imaging")
def series_thumbnail(case, series_uid: str):
    """Return a small JPEG of the series' middle image."""
    size = parse_query(ThumbnailQuery).size
    return Response(imaging.series_thumbnail(case, series_uid, size), mimetype="image/jpeg",
                    headers={"Cache-Control": "private, max-age=60"})


@bp.get("/attachments/<int:attachment_id>")
@case_route(Action.DOWNLOAD)
@api_doc(responses={200: "the attachment file"}, tag="imaging")
def attachment_file(case, attachment_id: int):
    """Download a photo or document attached to the case."""
    att = imaging.get_attachment(case, attachment_id)
    return _stream(att.object_key, att.content_type, att.size, att.filename, att.sha256)
