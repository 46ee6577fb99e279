"""The OHIF Viewer: its build under /ohif/, and its page per case (session) and per share link.

``/ohif/cases/{id}/…`` and ``/ohif/link/{token}/…`` are the viewer's router base: its page, its
routes (the study list, ``viewer?StudyInstanceUIDs=``) and its generated app-config.js, which points
its one DICOMweb source at ``/dicomweb/cases/{id}`` (the browser's session cookie) or at
``/dicomweb/link/{token}``. The build's own files are the same for everyone, under ``/ohif/``.
"""

import mimetypes
import re

from flask import Blueprint, Response, abort, current_app, redirect, send_from_directory, url_for

from app.audit import service as audit_log
from app.cases.permissions import Action, case_route
from app.core.errors import DomainError
from app.dicomweb import links
from app.dicomweb.media import public_base
from app.ohif import assets, service

bp = Blueprint("ohif", __name__)

# The viewer needs WebAssembly (codecs), blob: workers, inline styles (React) and data:/blob: images;
# scripts come only from this origin (the build's inline scripts moved into app-config.js).
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self' blob:",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])
TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
         ".json": "application/json", ".woff2": "font/woff2", ".svg": "image/svg+xml", ".html": "text/html"}
# Content-hashed build files never change under their name.
_HASHED = re.compile(r"(^|[./])[0-9a-f]{16}\.")
# The viewer's own routes are one segment below its base (viewer, segmentation, tmtv, ...).
_ROUTE = "<any_route>"


@bp.after_request
def _headers(response: Response) -> Response:
    # Set here, explicitly, so the app-wide policy does not replace what the viewer needs.
    response.headers["Content-Security-Policy"] = CSP
    # Link pages carry their token in the URL: never send it on as a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _dist():
    cache = current_app.config["OHIF_CACHE"]
    if not assets.is_ready(cache):
        abort(404, description="the OHIF Viewer is not fetched yet: run `flask --app run ohif-fetch` (make run does)")
    return assets.dist_dir(cache)


@bp.get("/ohif/<path:filename>")
def build_file(filename: str):
    """Serve a file of the OHIF build (wasm as application/wasm, hashed names cached for a year)."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    mimetype = TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    max_age = 365 * 24 * 3600 if _HASHED.search(filename) else 3600
    return send_from_directory(_dist(), filename, mimetype=mimetype, max_age=max_age)


def _page() -> Response:
    response = send_from_directory(_dist(), "index.html", mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


def _config(root: str, basename: str, title: str) -> Response:
    body = service.app_config_js(dicomweb_root=root, router_basename=basename.rstrip("/"), title=title)
    return Response(body, mimetype="text/javascript", headers={"Cache-Control": "no-store"})


# ---- a case, for its logged-in participants ------------------------------------------------------

@bp.get("/cases/<int:case_id>/ohif")
@case_route(Action.VIEW, audit="page.ohif")
def open_case(case):
    """Open the case's studies in the OHIF Viewer."""
    return redirect(url_for("ohif.case_page", case_id=case.id) + service.viewer_path(case))


@bp.get("/ohif/cases/<int:case_id>/")
@bp.get(f"/ohif/cases/<int:case_id>/{_ROUTE}")
@case_route(Action.VIEW, audit="none")
def case_page(case, any_route: str = ""):
    """Serve the OHIF Viewer page for a case (its routes answer the same page)."""
    return _page()


@bp.get("/ohif/cases/<int:case_id>/app-config.js")
@case_route(Action.VIEW, audit="none")
def case_config(case):
    """Serve OHIF's configuration for a case: its DICOMweb root, read with the session cookie."""
    return _config(f"{public_base()}/dicomweb/cases/{case.id}", url_for("ohif.case_page", case_id=case.id),
                   case.title)


# ---- a share link, without an account -----------------------------------------------------------

def _link_case(token: str, event: str | None = None):
    """Return the case a link opens to view; audit the opening (``event``) and every refusal."""
    link = None
    try:
        link = links.find_link(token)
        case = links.check_link(link, Action.VIEW)
    except DomainError as exc:
        # A revoked, expired or unknown link tried in the viewer is a use too, as on the DICOMweb root:
        # it left no row, and an unknown token went uncounted by the refusal limit.
        detail = {"error": exc.error} if link is None else {"error": exc.error, "link_id": link.id}
        audit_log.record_outcome(user_id=None, case_id=link.case_id if link else None,
                                 action=event or "link.viewer_page", status=exc.status, detail=detail)
        raise
    if event is not None:
        audit_log.record(user_id=None, case_id=case.id, action=event, status=200, detail={"link_id": link.id})
    return case


@bp.get("/viewer/link/<token>")
def open_link(token: str):
    """Open a share link's case in the OHIF Viewer, read-only, without an account."""
    case = _link_case(token, "link.viewer")
    return redirect(url_for("ohif.link_page", token=token) + service.viewer_path(case))


@bp.get("/ohif/link/<token>/")
@bp.get(f"/ohif/link/<token>/{_ROUTE}")
def link_page(token: str, any_route: str = ""):
    """Serve the OHIF Viewer page for a share link (its routes answer the same page)."""
    _link_case(token)
    return _page()


@bp.get("/ohif/link/<token>/app-config.js")
def link_config(token: str):
    """Serve OHIF's configuration for a share link: the link's DICOMweb root."""
    _link_case(token)
    return _config(f"{public_base()}/dicomweb/link/{token}", url_for("ohif.link_page", token=token),
                   "Huizhen")


for _view in (open_link, link_page, link_config):
    _view.case_action = Action.VIEW  # reached by a link's capability token, checked by links.check_link
