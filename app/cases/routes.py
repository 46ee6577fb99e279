"""Cases API: create, list, detail, the consultation workflow, participants, reports, opinions."""

from flask import Blueprint, Response, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.audit import service as audit_log
from app.cases import opinion_pdf, service
from app.cases.permissions import Action, can, case_route, reach_of
from app.cases.schemas import (
    CASE_DETAIL_SCHEMA,
    CASE_LIST_SCHEMA,
    AmendmentIn,
    AnswerIn,
    CaseCreate,
    CaseListQuery,
    CloseIn,
    OpinionIn,
    OpinionPdfQuery,
    ParticipantIn,
    QuestionIn,
    ReasonIn,
    ReportIn,
    ShareIn,
    case_detail_json,
    draft_json,
    event_json,
    opinion_json,
    participant_json,
    report_json,
    summaries_json,
)
from app.core.errors import NotFound
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_optional_body, parse_query
from app.extensions import db
from app.orgs import service as orgs
from app.orgs.schemas import AssignIn, RerouteIn

bp = Blueprint("cases", __name__, url_prefix="/api/cases")


@bp.post("")
@api_login_required
@api_doc(body=CaseCreate, responses={201: "the new draft case", 400: "a required field is missing or invalid"})
def create_case():
    """Create a draft case with its clinical question."""
    data = parse_body(CaseCreate)
    case = service.create_case(owner=current_user, data=data)
    db.session.commit()
    audit_log.record(user_id=current_user.id, case_id=case.id, action="create_case", status=201)
    return jsonify(case_detail_json(case, viewer=current_user)), 201


@bp.get("")
@api_login_required
@api_doc(query=CaseListQuery, responses={200: ("the matching cases the caller may see, and their total "
                                               "(at most 1000; total_capped: there are more)", CASE_LIST_SCHEMA)})
def list_cases():
    """Search the cases the caller may see: ``q`` words ranked best first, else newest first; filters AND-ed."""
    reach = reach_of(current_user)  # looked up once, for the search's visibility and the listed roles
    items, total = service.search_cases(viewer=current_user, query=parse_query(CaseListQuery), reach=reach)
    return jsonify({"items": summaries_json(items, viewer=current_user, reach=reach),
                    "total": min(total, service.COUNT_CAP), "total_capped": total > service.COUNT_CAP})


@bp.get("/<int:case_id>")
@case_route(Action.VIEW)
@api_doc(responses={200: ("the case with studies, attachments, people and opinion", CASE_DETAIL_SCHEMA),
                    404: "no such case visible to you"})
def get_case(case):
    """Return a case with its studies, series, attachments, people and opinion."""
    return jsonify(case_detail_json(case, viewer=current_user))


@bp.get("/<int:case_id>/timeline")
@case_route(Action.VIEW)
@api_doc(responses={200: "every transition and recorded action, oldest first"})
def timeline(case):
    """Return the case's timeline: who did what, when, and why."""
    return jsonify({"items": [event_json(e) for e in service.timeline(case, viewer=current_user)]})


def _done(case, status: int = 200):
    db.session.commit()
    return jsonify(case_detail_json(case, viewer=current_user)), status


@bp.post("/<int:case_id>/share")
@case_route(Action.SHARE)
@api_doc(body=ShareIn, responses={200: "status submitted", 409: "invalid transition",
                                   422: "shared to a consortium whose rules match nothing (names the specialty)"})
def share(case):
    """Share the case with a specialist, a consortium or a pool (from draft, or again after a decline)."""
    body = parse_body(ShareIn)
    if body.org_id is not None:
        return _done(orgs.share_to_org(case=case, actor=current_user, org_id=body.org_id, message=body.message))
    return _done(service.share(case=case, actor=current_user, specialist_id=body.specialist_id,
                               message=body.message))


@bp.post("/<int:case_id>/accept")
@case_route(Action.ACCEPT)
@api_doc(responses={200: "status accepted", 409: "invalid transition"})
def accept(case):
    """Accept the consultation (the designated specialist)."""
    return _done(service.accept(case=case, actor=current_user))


@bp.post("/<int:case_id>/decline")
@case_route(Action.DECLINE)
@api_doc(body=ReasonIn, responses={200: "status declined", 409: "invalid transition"})
def decline(case):
    """Decline the consultation, with a reason (the designated specialist)."""
    body = parse_optional_body(ReasonIn)
    return _done(service.decline(case=case, actor=current_user, reason=body.reason))


@bp.post("/<int:case_id>/withdraw")
@case_route(Action.WITHDRAW)
@api_doc(body=ReasonIn, responses={200: "status withdrawn", 409: "invalid transition"})
def withdraw(case):
    """Withdraw a draft or a case not yet accepted (the owner)."""
    body = parse_optional_body(ReasonIn)
    return _done(service.withdraw(case=case, actor=current_user, reason=body.reason))


@bp.post("/<int:case_id>/questions")
@case_route(Action.ASK)
@api_doc(body=QuestionIn, responses={200: "status info_requested", 409: "invalid transition"})
def ask(case):
    """Ask the referring doctor for more information (the consultant)."""
    return _done(service.ask(case=case, actor=current_user, question=parse_body(QuestionIn).question))


@bp.post("/<int:case_id>/answers")
@case_route(Action.ANSWER)
@api_doc(body=AnswerIn, responses={200: "status accepted again", 409: "invalid transition"})
def answer(case):
    """Answer the consultant's question (the owner; upload files to the case as well if needed)."""
    return _done(service.answer(case=case, actor=current_user, text=parse_body(AnswerIn).answer))


@bp.post("/<int:case_id>/close")
@case_route(Action.CLOSE)
@api_doc(body=CloseIn, responses={200: "status closed", 409: "invalid transition"})
def close(case):
    """Acknowledge the opinion and rate its usefulness 1–5 (the owner)."""
    body = parse_body(CloseIn)
    return _done(service.close(case=case, actor=current_user, rating=body.rating, comment=body.comment,
                                outcome=body.outcome, advice=body.advice))


@bp.get("/<int:case_id>/participants")
@case_route(Action.VIEW)
@api_doc(responses={200: "the current participants"})
def list_participants(case):
    """List the colleagues on the case and their disciplines."""
    return jsonify({"items": [participant_json(p) for p in service.participants(case)]})


@bp.post("/<int:case_id>/participants")
@case_route(Action.INVITE)
@api_doc(body=ParticipantIn, responses={201: "the new participant", 409: "already on the case or wrong status"})
def invite(case):
    """Invite a colleague for a discipline (the consultant)."""
    body = parse_body(ParticipantIn)
    p = service.invite(case=case, actor=current_user, user_id=body.user_id, discipline=body.discipline)
    db.session.commit()
    return jsonify(participant_json(p)), 201


@bp.delete("/<int:case_id>/participants/<int:user_id>")
@case_route(Action.REMOVE)
@api_doc(responses={204: "removed; their access ended at once"})
def remove_participant(case, user_id: int):
    """Remove a participant; their access, including open realtime connections, ends at once."""
    service.remove_participant(case=case, actor=current_user, user_id=user_id)
    db.session.commit()
    return "", 204


@bp.get("/<int:case_id>/reports")
@case_route(Action.READ_OPINION)
@api_doc(responses={200: "the discipline reports"})
def list_reports(case):
    """List the discipline reports (e.g. the radiology read)."""
    return jsonify({"items": [report_json(r) for r in service.reports(case)]})


@bp.post("/<int:case_id>/reports")
@case_route(Action.REPORT)
@api_doc(body=ReportIn, responses={201: "the report (one per author; posting again replaces it)"})
def add_report(case):
    """Write this discipline's report (participants and the consultant)."""
    body = parse_body(ReportIn)
    report = service.add_report(case=case, actor=current_user, body=body.body, discipline=body.discipline)
    db.session.commit()
    return jsonify(report_json(report)), 201


@bp.get("/<int:case_id>/opinion")
@case_route(Action.READ_OPINION)
@api_doc(responses={200: "the signed versions, latest last, and the draft for the consultant"})
def get_opinion(case):
    """Return the signed opinion versions (and the draft, to the consultant)."""
    draft = service.draft_of(case) if can(current_user, case, Action.WRITE_OPINION) else None
    return jsonify({"versions": [opinion_json(o) for o in service.signed_versions(case)],
                    "draft": None if draft is None else draft_json(draft)})


@bp.put("/<int:case_id>/opinion/draft")
@case_route(Action.WRITE_OPINION)
@api_doc(body=OpinionIn, responses={200: "the saved draft"})
def save_draft(case):
    """Save the opinion draft (fields given replace those saved; the consultant)."""
    draft = service.save_draft(case=case, actor=current_user, data=parse_body(OpinionIn))
    db.session.commit()
    return jsonify(draft_json(draft))


@bp.post("/<int:case_id>/opinion")
@case_route(Action.SIGN_OPINION)
@api_doc(body=OpinionIn, responses={200: "status answered; the opinion is signed and frozen",
                                    400: "diagnosis or recommendations missing", 409: "invalid transition"})
def sign_opinion(case):
    """Sign and send the opinion (the saved draft plus the fields given): status answered."""
    data = parse_optional_body(OpinionIn)
    service.sign_opinion(case=case, actor=current_user, data=data)
    return _done(case)


@bp.post("/<int:case_id>/opinion/amendments")
@case_route(Action.AMEND_OPINION)
@api_doc(body=AmendmentIn, responses={201: "a new signed version; earlier versions are kept"})
def amend_opinion(case):
    """Sign an amended version of the opinion, with the reason for the change."""
    body = parse_body(AmendmentIn)
    service.amend_opinion(case=case, actor=current_user, data=body, reason=body.reason)
    return _done(case, 201)


@bp.get("/<int:case_id>/opinion.pdf")
@case_route(Action.READ_OPINION)
@api_doc(query=OpinionPdfQuery,
         responses={200: "application/pdf of the signed opinion (``version`` picks an earlier one)"})
def opinion_pdf_file(case):
    """Download the signed opinion as a PDF (latest version unless ``version`` is given)."""
    versions = service.signed_versions(case)
    if not versions:
        raise NotFound("no signed opinion yet")
    wanted = parse_query(OpinionPdfQuery).version
    opinion = versions[-1] if wanted is None else next((v for v in versions if v.version == wanted), None)
    if opinion is None:
        raise NotFound("no such opinion version")
    data = opinion_pdf.render(case, opinion, versions)
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="huizhen-case-{case.id}-opinion-v{opinion.version}.pdf"'})


@bp.get("/<int:case_id>/audit")
@case_route(Action.READ_AUDIT)
@api_doc(responses={200: "every access to the case, allowed or denied"})
def audit(case):
    """Return the case's audit log (owner and consultant)."""
    return jsonify({"items": [audit_log.event_json(e) for e in audit_log.case_events(case.id)]})


@bp.post("/<int:case_id>/assign")
@case_route(Action.ASSIGN)
@api_doc(body=AssignIn, responses={200: "consultant set, still submitted", 409: "already assigned meanwhile"})
def assign(case):
    """Designate the specialist for a pooled case (the pool's coordinators); they accept or decline."""
    body = parse_body(AssignIn)
    return _done(orgs.assign(case=case, actor=current_user, specialist_id=body.specialist_id, note=body.note))


@bp.post("/<int:case_id>/reroute")
@case_route(Action.REROUTE)
@api_doc(body=RerouteIn, responses={200: "in the other pool's queue", 422: "no rule or coordinator there"})
def reroute(case):
    """Send a pooled case to another pool of the consortium, without the owner resubmitting."""
    body = parse_body(RerouteIn)
    return _done(orgs.reroute(case=case, actor=current_user, org_id=body.org_id, note=body.note))
