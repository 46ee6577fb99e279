"""Share-link API and the DICOMweb roots: /dicomweb/cases/{id} (bearer token) and /dicomweb/link/{token}.

Each DICOMweb view is registered under both roots. The wrapper resolves who is asking (an API
token's user through the case permissions, or a share link through its scope and its creator's
permissions), audits the use, and hands the view an :class:`Access`.
"""

import json
from functools import wraps

from flask import Blueprint, Response, jsonify, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from app.accounts import service as accounts
from app.accounts.auth import SAFE_METHODS, bearer_token
from app.accounts.models import User
from app.audit import service as audit_log
from app.cases.models import Case
from app.cases.permissions import Action, audit_made, case_route, require, require_ids
from app.cases.workflow import require_status
from app.core.errors import DomainError, Unauthorized
from app.core.openapi import api_doc
from app.core.schemas import parse_body
from app.dicomweb import links, qido, stow, wado
from app.dicomweb.media import json_response, multipart_response, parse_accept, public_base, require_json
from app.dicomweb.models import ShareLink
from app.dicomweb.schemas import LinkIn, link_json
from app.extensions import db

links_bp = Blueprint("links", __name__, url_prefix="/api/cases/<int:case_id>/links")
cases_bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb/cases/<int:case_id>")
link_bp = Blueprint("dicomweb_link", __name__, url_prefix="/dicomweb/link/<token>")


# ---- share links -------------------------------------------------------------------------------

@links_bp.post("")
@case_route(Action.MANAGE_LINKS)
@api_doc(body=LinkIn, responses={201: "the link, with its token (shown this once)"}, tag="dicomweb")
def create_link(case):
    """Create a share link (scope read or read_write, expiry, label); the token is shown once."""
    body = parse_body(LinkIn)
    token, link = links.create_link(case=case, user=current_user, scope=body.scope,
                                    expires_in_hours=body.expires_in_hours, label=body.label)
    audit_made(link_id=link.id)
    base = public_base()
    return jsonify({**link_json(link), "token": token, "dicomweb_url": f"{base}/dicomweb/link/{token}",
                    "viewer_url": f"{base}/viewer/link/{token}"}), 201


@links_bp.get("")
@case_route(Action.MANAGE_LINKS)
@api_doc(responses={200: "the case's links, without tokens"}, tag="dicomweb")
def list_links(case):
    """List the case's share links (never their tokens)."""
    return jsonify({"items": [link_json(link) for link in links.case_links(case)]})


@links_bp.delete("/<int:link_id>")
@case_route(Action.MANAGE_LINKS)
@api_doc(responses={204: "revoked; the link stops working at once"}, tag="dicomweb")
def revoke_link(case, link_id: int):
    """Revoke a share link at once."""
    links.revoke_link(case=case, link_id=link_id)
    return Response(status=204)


# ---- access to a DICOMweb root -----------------------------------------------------------------

class Access:
    """Who reaches which case through which root; ``actor`` is the user ingest records as uploader.

    A bearer-token request is checked from ids alone (``permissions.require_ids``, one query, no ORM
    objects): the case and the user are loaded only when a view asks for them, which searches,
    metadata and frames do not.
    """

    def __init__(self, *, case_id: int, user_id: int, link: ShareLink | None, root: str,
                 case: Case | None = None, actor: User | None = None):
        self.case_id, self.user_id, self.link, self.root = case_id, user_id, link, root
        self._case, self._actor = case, actor

    @property
    def case(self) -> Case:
        if self._case is None:
            self._case = db.session.get(Case, self.case_id)
        return self._case

    @property
    def actor(self) -> User:
        if self._actor is None:
            self._actor = db.session.get(User, self.user_id)
        return self._actor


def _resolve(action: Action, case_id: int | None, token: str | None, seen: dict) -> Access:
    base = public_base()
    if token is None:
        root = f"{base}/dicomweb/cases/{case_id}"
        bearer = bearer_token()
        if bearer is not None:
            # The request loader is not asked (it would load the user and its token as ORM objects).
            seen["user_id"] = user_id = accounts.user_id_for_token(bearer)
            if user_id is None:
                raise Unauthorized(detail="send Authorization: Bearer <token>")
            require_ids(user_id, case_id, action)
            return Access(case_id=case_id, user_id=user_id, link=None, root=root)
        # Storing needs the bearer header: a session cookie alone could be ridden by a cross-site form.
        if not current_user.is_authenticated or request.method not in SAFE_METHODS:
            raise Unauthorized(detail="send Authorization: Bearer <token>")
        user = current_user._get_current_object()
        seen["user_id"] = user.id
        case = require(user, case_id, action)
        return Access(case_id=case_id, user_id=user.id, link=None, root=root, case=case, actor=user)
    seen["link"] = link = links.find_link(token)
    case = links.check_link(link, action)
    return Access(case_id=case.id, user_id=link.created_by_id, link=link, root=f"{base}/dicomweb/link/{token}",
                  case=case)


def _audit(name: str, status: int, *, user_id: int | None, case_id: int | None, link: ShareLink | None,
           detail: dict | None = None, once: tuple | None = None,
           window: float = audit_log.AGGREGATE_SECONDS) -> None:
    """Log a use of a root: by the token's user, or by the link (its id, never its token)."""
    if link is not None:
        user_id = None
        detail = {**(detail or {}), "link_id": link.id}
    if once is not None:
        audit_log.record_once(key=(user_id, link.id if link else None, case_id, *once), user_id=user_id,
                              case_id=case_id, action=name, status=status, detail=detail, window=window)
    else:
        audit_log.record_outcome(user_id=user_id, case_id=case_id, action=name, status=status, detail=detail)


def dicomweb_route(rule: str, action: Action, *, methods=("GET",), aggregate: bool = False, search: bool = False,
                   doc: dict | None = None):
    """Register a view under both DICOMweb roots with access check and audit.

    ``aggregate``: frame-by-frame reads are logged once per caller, case and study/series per
    window (as the viewer's rendered frames are), not once per request. ``search``: a QIDO search
    repeated with the same query string is logged once per caller, case and search per
    ``audit_log.SEARCH_AGGREGATE_SECONDS``. Refusals are never aggregated: each is logged, up to
    HTTP_REFUSALS_PER_MINUTE per caller a minute (audit_log.record_refusal; past that a 429).
    """

    def decorate(view):
        def serve(case_id: int | None, token: str | None, kwargs: dict):
            name = f"dicomweb_{view.__name__}"
            seen: dict = {}
            try:
                access = _resolve(action, case_id, token, seen)
                response = view(access, **kwargs)
            except DomainError as exc:
                db.session.rollback()
                link = seen.get("link")
                _audit(name, exc.status, user_id=seen.get("user_id"), case_id=link.case_id if link else case_id,
                       link=link, detail={"error": exc.error})
                raise
            once, window = None, audit_log.AGGREGATE_SECONDS
            if aggregate:
                once = (kwargs.get("study"), kwargs.get("series"))
            elif search:
                once = (name, *kwargs.values(), request.query_string)
                window = audit_log.SEARCH_AGGREGATE_SECONDS
            _audit(name, response.status_code, user_id=access.user_id, case_id=access.case_id, link=access.link,
                   once=once, window=window)
            return response

        @wraps(view)
        def by_case(case_id: int, **kwargs):
            return serve(case_id, None, kwargs)

        @wraps(view)
        def by_link(token: str, **kwargs):
            return serve(None, token, kwargs)

        by_case.requires_auth = True
        for fn in (by_case, by_link):
            fn.case_action = action
            # No cookie-based action: stores need a bearer token or a link's capability token.
            fn.csrf_exempt = True
        documented = api_doc(responses=doc, tag="dicomweb")
        cases_bp.add_url_rule(rule, view_func=documented(by_case), methods=list(methods))
        link_bp.add_url_rule(rule, view_func=documented(by_link), methods=list(methods))
        return view

    return decorate


def _error(exc):
    if isinstance(exc, HTTPException):
        status, error, detail = exc.code or 500, (exc.name or "error").lower(), None
    else:
        status, error, detail = exc.status, exc.error, exc.detail
    body = {"error": error} if detail is None else {"error": error, "detail": detail}
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="huizhen"'
    return response


for _bp in (cases_bp, link_bp):
    _bp.register_error_handler(DomainError, _error)
    _bp.register_error_handler(HTTPException, _error)


def _accept():
    return parse_accept(request.headers.get("Accept"))


# ---- QIDO-RS -----------------------------------------------------------------------------------

_QIDO = {200: "matches as application/dicom+json (an empty array when nothing matches)",
         400: "invalid query", 406: "only application/dicom+json is offered"}


def _search(access: Access, search, **scope) -> Response:
    require_json()
    return json_response(qido.to_json(search(access.case_id, qido.parse_query(request.args), root=access.root,
                                             **scope)))


@dicomweb_route("/studies", Action.VIEW, search=True, doc=_QIDO)
def search_studies(access: Access):
    """QIDO-RS: search the case's studies."""
    return _search(access, qido.search_studies)


@dicomweb_route("/series", Action.VIEW, search=True, doc=_QIDO)
def search_all_series(access: Access):
    """QIDO-RS: search the case's series."""
    return _search(access, qido.search_series)


@dicomweb_route("/studies/<study>/series", Action.VIEW, search=True, doc=_QIDO)
def search_series(access: Access, study: str):
    """QIDO-RS: search the series of a study."""
    return _search(access, qido.search_series, study_uid=study)


@dicomweb_route("/instances", Action.VIEW, search=True, doc=_QIDO)
def search_all_instances(access: Access):
    """QIDO-RS: search the case's instances."""
    return _search(access, qido.search_instances)


@dicomweb_route("/studies/<study>/instances", Action.VIEW, search=True, doc=_QIDO)
def search_study_instances(access: Access, study: str):
    """QIDO-RS: search the instances of a study."""
    return _search(access, qido.search_instances, study_uid=study)


@dicomweb_route("/studies/<study>/series/<series>/instances", Action.VIEW, search=True, doc=_QIDO)
def search_instances(access: Access, study: str, series: str):
    """QIDO-RS: search the instances of a series."""
    return _search(access, qido.search_instances, study_uid=study, series_uid=series)


# ---- WADO-RS -----------------------------------------------------------------------------------

_WADO = {200: 'multipart/related; type="application/dicom"', 404: "not in this case",
         406: "the asked media type or transfer syntax cannot be served"}
_META = {200: "application/dicom+json with absolute BulkDataURIs", 404: "not in this case", 406: "not acceptable"}
_FRAMES = {200: 'multipart/related; type="application/octet-stream", one part per frame',
           404: "no such frame", 406: "not acceptable"}
_RENDERED = {200: "image/jpeg or image/png", 406: "not acceptable", 422: "cannot be rendered"}


def _instances(access: Access, study: str, series: str | None = None, sop: str | None = None):
    return wado.find_instances(access.case_id, study, series, sop)


def _retrieve(instances) -> Response:
    return multipart_response(wado.retrieve_parts(instances, _accept()), "application/dicom")


@dicomweb_route("/studies/<study>", Action.DOWNLOAD, doc=_WADO)
def retrieve_study(access: Access, study: str):
    """WADO-RS: retrieve a study's instances."""
    return _retrieve(_instances(access, study))


@dicomweb_route("/studies/<study>/series/<series>", Action.DOWNLOAD, doc=_WADO)
def retrieve_series(access: Access, study: str, series: str):
    """WADO-RS: retrieve a series' instances."""
    return _retrieve(_instances(access, study, series))


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>", Action.DOWNLOAD, doc=_WADO)
def retrieve_instance(access: Access, study: str, series: str, sop: str):
    """WADO-RS: retrieve one instance."""
    return _retrieve(_instances(access, study, series, sop))


def _metadata(access: Access, instances) -> Response:
    require_json()
    return json_response(wado.metadata(instances, root=access.root))


@dicomweb_route("/studies/<study>/metadata", Action.VIEW, doc=_META)
def study_metadata(access: Access, study: str):
    """WADO-RS: the metadata of a study's instances."""
    return _metadata(access, _instances(access, study))


@dicomweb_route("/studies/<study>/series/<series>/metadata", Action.VIEW, doc=_META)
def series_metadata(access: Access, study: str, series: str):
    """WADO-RS: the metadata of a series' instances."""
    return _metadata(access, _instances(access, study, series))


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>/metadata", Action.VIEW, doc=_META)
def instance_metadata(access: Access, study: str, series: str, sop: str):
    """WADO-RS: the metadata of one instance."""
    return _metadata(access, _instances(access, study, series, sop))


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>/frames/<frame_list>", Action.VIEW,
                aggregate=True, doc=_FRAMES)
def instance_frames(access: Access, study: str, series: str, sop: str, frame_list: str):
    """WADO-RS: retrieve frames (``1,3``) as stored, one part each."""
    inst = _instances(access, study, series, sop)[0]
    media, parts = wado.frames(inst, wado.parse_frame_list(frame_list), _accept())
    return multipart_response(parts, media)


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>/bulkdata/<path:tag_path>", Action.VIEW,
                aggregate=True, doc=_FRAMES)
def instance_bulkdata(access: Access, study: str, series: str, sop: str, tag_path: str):
    """WADO-RS: retrieve a bulk data element named in the metadata's BulkDataURI."""
    inst = _instances(access, study, series, sop)[0]
    media, parts = wado.bulkdata(inst, tag_path, _accept())
    return multipart_response(parts, media)


def _image(data: bytes, fmt: str) -> Response:
    return Response(data, mimetype=f"image/{fmt}", headers={"Cache-Control": "private, max-age=3600"})


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>/rendered", Action.VIEW, aggregate=True,
                doc=_RENDERED)
def instance_rendered(access: Access, study: str, series: str, sop: str):
    """WADO-RS: the first frame rendered (``window``=center,width; ``viewport``=w,h)."""
    inst = _instances(access, study, series, sop)[0]
    fmt = wado.rendered_format(_accept())
    return _image(wado.rendered(inst, wado.render_request(request.args, frame=1, fmt=fmt)), fmt)


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>/frames/<int:frame>/rendered", Action.VIEW,
                aggregate=True, doc=_RENDERED)
def frame_rendered(access: Access, study: str, series: str, sop: str, frame: int):
    """WADO-RS: one frame rendered (``window``=center,width; ``viewport``=w,h)."""
    inst = _instances(access, study, series, sop)[0]
    fmt = wado.rendered_format(_accept())
    return _image(wado.rendered(inst, wado.render_request(request.args, frame=frame, fmt=fmt)), fmt)


def _thumbnail(access: Access, instances) -> Response:
    fmt = wado.rendered_format(_accept())
    size = wado.render_request(request.args, frame=1, fmt=fmt, default_size=128).size
    return _image(wado.thumbnail(access.case, instances, fmt, size), fmt)


@dicomweb_route("/studies/<study>/thumbnail", Action.VIEW, aggregate=True, doc=_RENDERED)
def study_thumbnail(access: Access, study: str):
    """WADO-RS: a small image of the study's first series."""
    return _thumbnail(access, _instances(access, study))


@dicomweb_route("/studies/<study>/series/<series>/thumbnail", Action.VIEW, aggregate=True, doc=_RENDERED)
def series_thumbnail(access: Access, study: str, series: str):
    """WADO-RS: a small image of the series' middle instance."""
    return _thumbnail(access, _instances(access, study, series))


@dicomweb_route("/studies/<study>/series/<series>/instances/<sop>/thumbnail", Action.VIEW, aggregate=True,
                doc=_RENDERED)
def instance_thumbnail(access: Access, study: str, series: str, sop: str):
    """WADO-RS: a small image of the instance."""
    return _thumbnail(access, _instances(access, study, series, sop))


# ---- STOW-RS -----------------------------------------------------------------------------------

_STOW = {200: "all stored (application/dicom+json Store Instances Response)", 202: "some failed",
         409: "none stored", 415: 'not multipart/related; type="application/dicom"'}


def _store(access: Access, study: str | None) -> Response:
    require_status(access.case, Action.UPLOAD)
    boundary = stow.boundary_of(request.content_type)

    def retrieve_url(entry: dict) -> str:
        return f"{access.root}/studies/{entry['study_uid']}/series/{entry['series_uid']}/instances/" \
               f"{entry['sop_instance_uid']}"

    result = stow.store(case=access.case, user=access.actor, stream=request.stream, boundary=boundary,
                        study_uid=study, retrieve_url=retrieve_url)
    studies = {url.split("/series/")[0] for item in result.referenced for url in item["00081190"]["Value"]}
    study_url = studies.pop() if len(studies) == 1 else None
    return json_response(json.dumps(stow.response_body(result, study_url)), status=result.status)


@dicomweb_route("/studies", Action.UPLOAD, methods=("POST",), doc=_STOW)
def store_instances(access: Access):
    """STOW-RS: store DICOM instances (de-identified and indexed like uploads)."""
    return _store(access, None)


@dicomweb_route("/studies/<study>", Action.UPLOAD, methods=("POST",), doc=_STOW)
def store_study_instances(access: Access, study: str):
    """STOW-RS: store DICOM instances of one study."""
    return _store(access, study)
