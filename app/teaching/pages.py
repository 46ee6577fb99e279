"""Teaching collection pages: the collection with its search box, one teaching case, its images."""

from flask import Blueprint, render_template, url_for
from flask_login import current_user, login_required

from app.accounts.specialties import SPECIALTIES
from app.cases.models import Case
from app.core.errors import NotFound
from app.core.schemas import parse_query
from app.extensions import db
from app.imaging import service as imaging
from app.teaching import service
from app.teaching.models import DIFFICULTIES
from app.teaching.permissions import reads_copy
from app.teaching.schemas import TeachingQuery, review_teaching_json, teaching_json
from app.web.schemas import ViewerQuery

bp = Blueprint("teaching_pages", __name__)


@bp.get("/teaching")
@login_required
def collection():
    """Show the teaching collection the user may read, searchable, proposals awaiting consent, and the
    peer-review disagreements the user may propose (with the orgs they may propose to)."""
    query = parse_query(TeachingQuery)
    reviews = [review_teaching_json(*row) for row in service.teachable_reviews(user=current_user)]
    orgs = [{"id": o.id, "name": o.name} for o in service.proposable_orgs(user=current_user)] if reviews else []
    return render_template("teaching.html", query=query, specialties=SPECIALTIES,
                           items=[teaching_json(t) for t in service.collection(user=current_user, query=query)],
                           pending=[teaching_json(t, copy=reads_copy(current_user, t))
                                    for t in service.awaiting_consent(user=current_user)],
                           reviews=reviews, orgs=orgs, difficulties=DIFFICULTIES)


@bp.get("/teaching/<int:teaching_id>")
@login_required
def teaching_case(teaching_id: int):
    """Show one teaching case: question, reports, signed opinion, note, tags and a link to its images."""
    t, role = service.get(user=current_user, teaching_id=teaching_id)
    return render_template("teaching_case.html", item=teaching_json(t, copy=reads_copy(current_user, t)), role=role)


@bp.get("/teaching/<int:teaching_id>/viewer")
@login_required
def teaching_viewer(teaching_id: int):
    """Show a published teaching case's images in the viewer, read-only: no room, no chat."""
    t, _role = service.get(user=current_user, teaching_id=teaching_id)
    if not reads_copy(current_user, t):
        raise NotFound("teaching case not found")
    case = db.session.get(Case, t.case_id)
    studies = imaging.case_studies(case)
    series = [s for st in studies for s in st["series"]]
    chosen = parse_query(ViewerQuery).series or (max(series, key=lambda s: s["instance_count"])["series_uid"]
                                                 if series else None)
    return render_template("viewer.html", case={"id": case.id, "title": t.content["title"]}, studies=studies,
                           series_uid=chosen, people={}, read_only=True,
                           back_url=url_for("teaching_pages.teaching_case", teaching_id=t.id))
