"""Browser pages: login, language, inbox, new case, case page and viewer.

Pages are thin: they check access with the same permissions as the API (``case_route``), render
a template, and leave state changes to the JSON API, which the page scripts call with the
session cookie and the CSRF token.
"""

from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from pydantic import ValidationError

from app.accounts import service as accounts
from app.accounts.auth import failed_login, login_account_key
from app.accounts.specialties import SPECIALTIES
from app.audit import service as audit_log
from app.cases import service as cases
from app.cases.permissions import Action, case_route, reach_of
from app.cases.schemas import (
    CaseCreate,
    CaseListQuery,
    InboxStatusQuery,
    case_detail_json,
    summaries_json,
    summary_json,
)
from app.core.schemas import parse_query
from app.extensions import db, limiter
from app.imaging import service as imaging
from app.metrics import followup
from app.notifications import service as notifications
from app.orgs import service as orgs
from app.orgs.pages import my_orgs
from app.orgs.schemas import decision_json
from app.web.i18n import LANGUAGES
from app.web.schemas import NextQuery, ViewerQuery

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
# Front-end packages the pages load, installed from the npm registry by `make install` (npm ci).
VENDOR_FILES = {
    "socket.io.esm.min.js": "socket.io-client/dist/socket.io.esm.min.js",
    "socket.io.esm.min.js.map": "socket.io-client/dist/socket.io.esm.min.js.map",
    "echarts.esm.min.js": "echarts/dist/echarts.esm.min.js",
}
MODALITIES = ("CT", "MR", "US", "DX", "CR", "MG", "PT", "NM", "XA")
URGENCIES = ("routine", "urgent", "emergency")
STATUS_FILTERS = ("draft", "submitted", "accepted", "info_requested", "answered", "declined", "closed",
                  "withdrawn")


def _inbox_search(status: str | None) -> CaseListQuery:
    # A hand-edited filter (a bad date) shows the unfiltered inbox rather than an error page.
    try:
        return CaseListQuery.model_validate({**request.args.to_dict(), "status": status})
    except ValidationError:
        return CaseListQuery(status=status)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths, so the login form cannot be used as an open redirect.
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("web.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], deduct_when=failed_login)
@limiter.limit(lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"], methods=["POST"], key_func=login_account_key,
               deduct_when=failed_login)
def login():
    """Show the login form (GET) or log the user in with email and password (POST)."""
    if request.method == "POST":
        user = accounts.authenticate(email=request.form.get("email", ""),
                                     password=request.form.get("password", ""))
        if user is not None:
            accounts.start_login_session(user)
            login_user(user, remember=bool(request.form.get("remember")))
            return redirect(_safe_next(parse_query(NextQuery).next))
        flash(_("邮箱或密码错误"), "error")
        return render_template("login.html", email=request.form.get("email", "")), 401
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    return render_template("login.html", email="")


@bp.post("/logout")
@login_required
def logout():
    """Log the user out of the browser session: it ends, for any copy of its cookies too."""
    accounts.end_login_session(current_user)
    logout_user()
    return redirect(url_for("web.login"))


@bp.get("/lang/<code>")
def set_language(code: str):
    """Switch the pages' language (zh or en) and go back to where the user was."""
    if code not in LANGUAGES:
        abort(404)
    session["lang"] = code
    return redirect(_safe_next(parse_query(NextQuery).next))


@bp.get("/")
@login_required
def index():
    """Show the inbox: what awaits the doctor, their cases, invitations, notifications, orgs and away switch."""
    inbox = parse_query(InboxStatusQuery)
    status = inbox.status
    reach = reach_of(current_user)  # looked up once for every list on the page and its roles
    sections = cases.dashboard(viewer=current_user, status=status, reach=reach,
                               pages={inbox.section: inbox.page} if inbox.section else None)
    search = _inbox_search(status)
    results = None
    if search.q or search.model_fields_set - {"status"}:  # words or a filter beyond status: one ranked list
        found, _total = cases.search_cases(viewer=current_user, query=search.model_copy(update={"limit": 100}),
                                           reach=reach)
        results = summaries_json(found, viewer=current_user, reach=reach)
    notes = notifications.inbox(user=current_user, limit=20)
    return render_template(
        "inbox.html",
        sections={name: replace(s, cases=summaries_json(s.cases, viewer=current_user, reach=reach))
                  for name, s in sections.items()},
        count_cap=cases.COUNT_CAP,
        search=search, results=results, specialties=SPECIALTIES, modalities=MODALITIES, urgencies=URGENCIES,
        status=status, statuses=STATUS_FILTERS,
        notifications=notes,
        open_follow_ups=followup.unanswered(case_ids=[n.case_id for n in notes if n.kind == "follow_up"]),
        unread=notifications.unread_count(user=current_user),
        orgs=my_orgs(current_user), away_until=orgs.away_now(current_user))


@bp.route("/cases/new", methods=["GET", "POST"])
@login_required
def new_case():
    """Show the new-case form (GET) or create the draft and go on to its uploads (POST)."""
    form = request.form
    errors: dict[str, str] = {}
    if request.method == "POST":
        body = {"title": form.get("title", "").strip(), "clinical_question": form.get("clinical_question", "").strip(),
                "summary": form.get("summary", "").strip(), "urgency": form.get("urgency") or "routine",
                "specialty": form.get("specialty") or None,
                "patient": {"age": form.get("age") or None, "sex": form.get("sex") or None}}
        try:
            data = CaseCreate.model_validate(body)
        except ValidationError as exc:
            for err in exc.errors():
                errors[".".join(str(p) for p in err["loc"])] = err["msg"]
        else:
            case = cases.create_case(owner=current_user, data=data)
            db.session.commit()
            audit_log.record(user_id=current_user.id, case_id=case.id, action="create_case", status=201)
            return redirect(url_for("web.case_page", case_id=case.id, _anchor="upload"))
    return render_template("case_new.html", form=form, errors=errors, specialties=SPECIALTIES), \
        (400 if errors else 200)


@bp.get("/cases/<int:case_id>")
@case_route(Action.VIEW, audit="page.case")
def case_page(case):
    """Show a case: summary, status, timeline, images, people, and the actions the user may take."""
    detail = case_detail_json(case, viewer=current_user)
    actions = set(detail["actions_now"])  # the template offers these and decides nothing itself
    draft = cases.draft_of(case) if Action.WRITE_OPINION in actions else None
    trail = [decision_json(d) for d in orgs.decisions(case)]
    return render_template("case.html", case=detail, timeline=cases.timeline(case, viewer=current_user),
                           specialties=SPECIALTIES, draft=draft, actions=actions, trail=trail)


@bp.get("/cases/<int:case_id>/viewer")
@case_route(Action.VIEW, audit="page.viewer")
def viewer_page(case):
    """Show the image viewer with the consultation room beside it."""
    studies = imaging.case_studies(case)
    people = {case.owner_id: case.owner.name}
    if case.consultant is not None:
        people[case.consultant_id] = case.consultant.name
    for p in cases.participants(case):
        people[p.user_id] = p.user.name
    series = [s for st in studies for s in st["series"]]
    chosen = parse_query(ViewerQuery).series or (max(series, key=lambda s: s["instance_count"])["series_uid"]
                                                 if series else None)
    return render_template("viewer.html", case=summary_json(case, viewer=current_user), studies=studies,
                           series_uid=chosen, people=people)


@bp.get("/favicon.ico")
def favicon():
    """Serve the site icon where browsers and crawlers look for it by default."""
    return send_from_directory(bp.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


@bp.get("/vendor/<path:name>")
def vendor(name: str):
    """Serve a front-end package file installed from npm (never a CDN)."""
    rel = VENDOR_FILES.get(name)
    path = NODE_MODULES / rel if rel else None
    if path is None or not path.is_file():
        abort(404, description=f"{name} is not installed: run `make install` (npm ci)")
    return send_file(path, max_age=3600)
