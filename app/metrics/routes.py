"""Metrics API: the definitions, an org's dashboard (JSON or CSV) and its monthly PDF report,
close-out follow-ups, doctor evaluations and blinded peer reviews."""

from flask import Blueprint, Response, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.accounts.models import User
from app.cases.permissions import Action, case_route
from app.core.errors import NotFound
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_query
from app.core.time import isoformat, utcnow
from app.extensions import db
from app.metrics import dashboard, evaluation, followup, report, report_pdf
from app.metrics import models as _models  # noqa: F401 - the tables and indexes of this package
from app.metrics.definitions import METRICS
from app.metrics.schemas import (
    DashboardQuery,
    FollowUpIn,
    PeerReviewIn,
    PeriodQuery,
    ReportQuery,
    dashboard_csv,
    metric_json,
)
from app.orgs.permissions import MAX_ID, OrgAction, require_org

bp = Blueprint("metrics", __name__, url_prefix="/api")


@bp.get("/metrics")
@api_login_required
@api_doc(responses={200: "every metric's code, label, unit, direction, definition, minimum n and method"})
def list_metrics():
    """List the metrics and how each is defined."""
    return jsonify({"items": [metric_json(m) for m in METRICS]})


@bp.get("/orgs/<int:org_id>/dashboard")
@api_login_required
@api_doc(query=DashboardQuery, responses={200: "the dashboard (or one of its tables as CSV with format=csv)",
                                          400: "a bad period or peer group", 404: "no such org visible to you"})
def org_dashboard(org_id: int):
    """Return an org's figures, each member against its peers, the gap table and monthly trends."""
    query = parse_query(DashboardQuery)
    org = require_org(current_user, org_id, OrgAction.VIEW)
    span = dashboard.period(query.from_, query.to, today=utcnow().date())
    board = dashboard.build(org=org, span=span, peers=query.peers, sees_all=current_user.is_admin)
    if query.format == "csv":
        name = f"dashboard-{org.id}-{query.table}-{span.start}-{span.end}.csv"
        return Response(dashboard_csv(board, query.table), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return jsonify(board)


@bp.get("/orgs/<int:org_id>/report.pdf")
@api_login_required
@api_doc(query=ReportQuery, responses={
    200: "application/pdf: the month's report in Chinese (key figures against the previous month, members "
         "against their peers, the gap table, a 12-month trend, definitions)",
    400: "a bad month", 404: "no such org visible to you"})
def org_report(org_id: int):
    """Return an org's monthly report as a PDF, from the same figures as its dashboard."""
    query = parse_query(ReportQuery)
    org = require_org(current_user, org_id, OrgAction.VIEW)
    today = utcnow().date()
    month = report.check_month(query.month, today=today)
    data = report_pdf.render(report.monthly_report(org=org, month=month, today=today))
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="huizhen-report-{org.id}-{month}.pdf"'})


@bp.post("/cases/<int:case_id>/follow-up")
@case_route(Action.CLOSE)
@api_doc(body=FollowUpIn, responses={200: "the answer recorded", 409: "not asked yet, or already answered"})
def answer_follow_up(case):
    """Answer the 30-day follow-up: was the advice followed? (the owner, once)"""
    body = parse_body(FollowUpIn)
    answer = followup.answer_follow_up(case=case, actor=current_user, followed=body.followed)
    db.session.commit()
    return jsonify({"case_id": case.id, "followed": answer.followed, "asked_at": isoformat(answer.asked_at),
                    "answered_at": isoformat(answer.answered_at)})


@bp.get("/users/<int:user_id>/evaluation")
@api_login_required
@api_doc(query=PeriodQuery, responses={200: "the doctor's metrics against pool and specialty (or the public profile)",
                                       404: "no such user"})
def user_evaluation(user_id: int):
    """Return a doctor's evaluation: in full to them, their coordinators and admins; else the public profile."""
    query = parse_query(PeriodQuery)
    subject = db.session.get(User, user_id) if user_id <= MAX_ID else None
    if subject is None or subject.is_admin:
        raise NotFound("user not found")
    span = dashboard.period(query.from_, query.to, today=utcnow().date())
    return jsonify(evaluation.evaluation(viewer=current_user, subject=subject, span=span))


@bp.get("/peer-reviews/next")
@api_login_required
@api_doc(responses={200: "a colleague's signed opinion to review blind, or null"})
def next_peer_review():
    """Offer a same-specialty colleague's signed opinion for blinded review (author not shown)."""
    return jsonify({"item": evaluation.next_for_review(reviewer=current_user)})


# Not under /api/cases/{id}: every route there is a case_route for the case's own people, and a
# blinded reviewer is deliberately none of them (the eligibility rule is evaluation.review's).
@bp.post("/peer-reviews")
@api_login_required
@api_doc(body=PeerReviewIn, responses={201: "the review recorded", 404: "not a case you may review",
                                       409: "already reviewed"})
def create_peer_review():
    """Review a colleague's signed opinion blind: agree, minor or major disagreement (with a teaching note)."""
    body = parse_body(PeerReviewIn)
    entry = evaluation.review(case_id=body.case_id, reviewer=current_user, score=body.score,
                              teaching_note=body.teaching_note)
    db.session.commit()
    return jsonify({"id": entry.id, "case_id": entry.case_id, "score": entry.score,
                    "teaching_note": entry.teaching_note, "created_at": isoformat(entry.created_at)}), 201
