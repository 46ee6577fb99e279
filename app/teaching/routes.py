"""Teaching collection API: propose a closed case (or a peer review's disagreement), consent, browse
and search, unpublish."""

from flask import Blueprint, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.cases.permissions import Action, case_route
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_query
from app.extensions import db
from app.teaching import service
from app.teaching.permissions import reads_copy
from app.teaching.schemas import (
    ConsentIn,
    ProposeIn,
    ReviewTeachingIn,
    TeachingQuery,
    review_teaching_json,
    teaching_json,
)

bp = Blueprint("teaching", __name__, url_prefix="/api")


@bp.post("/cases/<int:case_id>/teaching")
@case_route(Action.PROPOSE_TEACHING)
@api_doc(body=ProposeIn, responses={201: "proposed; the referring doctor is asked to consent",
                                    400: "not an org you belong to", 409: "case not closed, or already proposed"},
         tag="teaching")
def propose(case):
    """Propose the closed case for a consortium's or pool's teaching collection (its consultant)."""
    body = parse_body(ProposeIn)
    t = service.propose(case=case, actor=current_user, org_id=body.org_id, note=body.note, tags=body.tags)
    db.session.commit()
    return jsonify(teaching_json(t)), 201


# Not a case_route: the blinded reviewer is none of the case's people (see metrics.routes), and who
# may act on a review is app.teaching.permissions.review_capacity's to decide. Nor is it written to
# the case's audit log, which the author reads: a row there would name the reviewer.
@bp.post("/peer-reviews/<int:review_id>/teaching")
@api_login_required
@api_doc(body=ReviewTeachingIn,
         responses={201: "proposed with the review's note and score; the referring doctor is asked to consent",
                    400: "not an org you belong to", 404: "not a review you may act on",
                    409: "the review agreed, the case is not closed, or already proposed to this collection"},
         tag="teaching")
def propose_from_review(review_id: int):
    """Propose a peer review's minor/major disagreement for a teaching collection (the reviewed author,
    the reviewer, or a coordinator/admin of the case's pool or consortium)."""
    body = parse_body(ReviewTeachingIn)
    t = service.propose_from_review(review_id=review_id, actor=current_user, org_id=body.org_id, tags=body.tags)
    answer = teaching_json(t, copy=reads_copy(current_user, t))
    db.session.commit()
    return jsonify(answer), 201


@bp.get("/peer-reviews/teachable")
@api_login_required
@api_doc(responses={200: "the minor/major peer reviews the caller may turn into teaching cases, newest first"},
         tag="teaching")
def teachable_reviews():
    """List the disagreements the caller may propose as teaching cases, blinded (no reviewer, no author)."""
    return jsonify({"items": [review_teaching_json(*row) for row in service.teachable_reviews(user=current_user)]})


@bp.get("/teaching")
@api_login_required
@api_doc(query=TeachingQuery, responses={200: "published teaching cases the caller may read, best match first"},
         tag="teaching")
def collection():
    """Browse and search the teaching collections of the caller's consortia and pools."""
    items = service.collection(user=current_user, query=parse_query(TeachingQuery))
    return jsonify({"items": [teaching_json(t) for t in items]})


@bp.get("/teaching/pending")
@api_login_required
@api_doc(responses={200: "proposals awaiting the caller's consent, or that the caller made"}, tag="teaching")
def pending():
    """List the proposals waiting for the caller's consent and those they proposed."""
    return jsonify({"items": [teaching_json(t, copy=reads_copy(current_user, t))
                              for t in service.awaiting_consent(user=current_user)]})


@bp.get("/teaching/<int:teaching_id>")
@api_login_required
@api_doc(responses={200: "the teaching case", 404: "not visible to you"}, tag="teaching")
def get(teaching_id: int):
    """Return one teaching case (readers of its collection, its consultant, the referring doctor)."""
    t, _role = service.get(user=current_user, teaching_id=teaching_id)
    return jsonify(teaching_json(t, copy=reads_copy(current_user, t)))


@bp.post("/teaching/<int:teaching_id>/consent")
@api_login_required
@api_doc(body=ConsentIn, responses={200: "published, or refused", 403: "not the referring doctor",
                                    409: "already decided"}, tag="teaching")
def consent(teaching_id: int):
    """Agree (published at once; ``show_hospital`` names the referring hospital) or refuse (the owner)."""
    body = parse_body(ConsentIn)
    t = service.consent(user=current_user, teaching_id=teaching_id, agree=body.agree,
                        show_hospital=body.show_hospital)
    # The answer is what this request decided, read while its row lock holds: after the commit a
    # removal waiting on that lock may already have deleted the row (a 500 on reading it back).
    answer = teaching_json(t)
    db.session.commit()
    return jsonify(answer)


@bp.delete("/teaching/<int:teaching_id>")
@api_login_required
@api_doc(responses={204: "removed from the collection at once"}, tag="teaching")
def unpublish(teaching_id: int):
    """Remove a teaching case from the collection (its consultant or proposer, the referring doctor, an org admin)."""
    service.unpublish(user=current_user, teaching_id=teaching_id)
    db.session.commit()
    return "", 204
