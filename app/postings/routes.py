"""Supply and demand API: post a need or an offer, list postings, rank matches, accept one."""

from flask import Blueprint, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_query
from app.extensions import db
from app.orgs import service as orgs
from app.orgs.schemas import org_json
from app.postings import service
from app.postings.schemas import PostingIn, PostingQuery, match_json, posting_json

bp = Blueprint("postings", __name__, url_prefix="/api")


@bp.post("/postings")
@api_login_required
@api_doc(body=PostingIn, responses={201: "the posting", 403: "members of that institution only"})
def create_posting():
    """Post what an institution needs (demand) or offers (supply)."""
    body = parse_body(PostingIn)
    posting = service.create_posting(actor=current_user, data=body)
    db.session.commit()
    return jsonify(posting_json(posting)), 201


@bp.get("/postings")
@api_login_required
@api_doc(query=PostingQuery, responses={200: "the open postings"})
def list_postings():
    """List the open postings (``kind``, ``service``, ``specialty`` filter)."""
    query = parse_query(PostingQuery)
    return jsonify({"items": [posting_json(p) for p in service.list_postings(query=query)]})


@bp.get("/postings/<int:posting_id>")
@api_login_required
@api_doc(responses={200: "the posting", 404: "no such posting"})
def get_posting(posting_id: int):
    """Return one posting."""
    return jsonify(posting_json(service.get_posting(posting_id)))


@bp.get("/postings/<int:posting_id>/matches")
@api_login_required
@api_doc(responses={200: "counterpart postings ranked best first, each with its score and reasons"})
def list_matches(posting_id: int):
    """Rank the counterpart postings by service, specialty, capacity, region, level and measured performance."""
    posting = service.get_posting(posting_id)
    return jsonify({"items": [match_json(m) for m in service.matches(posting)]})


@bp.post("/postings/<int:posting_id>/matches/<int:other_id>/accept")
@api_login_required
@api_doc(responses={201: "both sides accepted: the consortium both institutions are now in",
                    202: "accepted for this side; the match forms when the other side accepts too",
                    403: "members of the posting's institution", 409: "a posting is no longer open"})
def accept_match(posting_id: int, other_id: int):
    """Accept a match for the posting's institution; it forms once the other side has accepted too."""
    posting = service.get_posting(posting_id)
    org = service.accept_match(posting=posting, other_id=other_id, actor=current_user)
    db.session.commit()
    if org is None:
        return jsonify({"state": "waiting", "posting_id": posting.id, "other_id": other_id,
                        "detail": "a member of the other institution must accept this match too"}), 202
    return jsonify(org_json(org, members=orgs.members(org), institutions=orgs.institutions(org),
                            children=orgs.children(org))), 201
