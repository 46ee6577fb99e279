"""Accounts API: tokens, the current user and the specialist directory."""

from flask import Blueprint, current_app, g, jsonify
from flask_login import current_user

from app.accounts import service
from app.accounts.auth import api_login_required, csrf_exempt, failed_login, login_account_key
from app.accounts.models import User
from app.accounts.schemas import TOKEN_SCHEMA, USER_SCHEMA, SpecialistQuery, TokenRequest, token_json, user_json
from app.accounts.specialties import INSTITUTION_LEVELS, SPECIALTIES
from app.cases import matching
from app.cases.permissions import Action, authorize_case
from app.cases.service import open_case_counts
from app.core.errors import BadRequest, NotFound, Unauthorized
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_query
from app.core.time import isoformat
from app.extensions import db, limiter

bp = Blueprint("accounts", __name__, url_prefix="/api")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.post("/auth/token")
@csrf_exempt
@limiter.limit(_login_limit, deduct_when=failed_login)
@limiter.limit(lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"], key_func=login_account_key,
               deduct_when=failed_login)
@api_doc(body=TokenRequest, responses={200: ("a token and the user", TOKEN_SCHEMA), 401: "wrong email or password",
                                       429: "too many attempts"}, tag="auth")
def create_token():
    """Exchange an email and password for an API bearer token."""
    body = parse_body(TokenRequest)
    user = service.authenticate(email=body.email, password=body.password)
    if user is None:
        raise Unauthorized("invalid email or password")
    clear, record = service.issue_token(user=user)
    db.session.commit()
    return jsonify(token_json(clear, record, user))


@bp.delete("/auth/token")
@api_login_required
@api_doc(responses={204: "the token is revoked"}, tag="auth")
def revoke_token():
    """Revoke the bearer token used for this request."""
    record = g.get("api_token")
    if record is None:
        raise BadRequest("no bearer token in this request")
    service.revoke_token(record=record)
    db.session.commit()
    return "", 204


@bp.get("/me")
@api_login_required
@api_doc(responses={200: ("the current user", USER_SCHEMA)}, tag="accounts")
def me():
    """Return the calling user."""
    return jsonify(user_json(current_user))


@bp.get("/specialties")
@api_login_required
@api_doc(tag="accounts")
def specialties():
    """List the specialty codes and hospital levels, with Chinese and English names."""
    return jsonify({
        "items": [{"code": c, "zh": zh, "en": en} for c, (zh, en) in SPECIALTIES.items()],
        "levels": [{"code": c, "zh": zh, "en": en} for c, (zh, en) in INSTITUTION_LEVELS.items()],
    })


@bp.get("/specialists")
@api_login_required
@api_doc(query=SpecialistQuery, responses={200: "specialists, best match first", 400: "unknown specialty",
                                           404: "case_id names no case you may see"}, tag="accounts")
def specialists():
    """Rank specialists for a case (``case_id``) or a search (``specialty``, ``q``), with reasons."""
    query = parse_query(SpecialistQuery)
    specialty, exclude = query.specialty, set()
    if query.case_id is not None:
        case = authorize_case(current_user, query.case_id, Action.SHARE, audit="specialists")
        specialty = specialty or case.specialty
        exclude = {case.owner_id}
    users = service.find_doctors(viewer=current_user, specialty=specialty, q=query.q, exclude=exclude)
    ranked = matching.rank(users, specialty=specialty)[:query.limit]
    return jsonify({"items": [
        {**user_json(r.user), "open_cases": r.open_cases, "score": r.score, "reasons": r.reasons,
         "away_until": isoformat(r.away_until), "stats": r.stats.as_json(), "track_record": r.stats.metrics_json()}
        for r in ranked
    ]})


@bp.get("/specialists/<int:user_id>")
@api_login_required
@api_doc(responses={200: "a specialist's profile with answered cases, response time and rating (last 12 months, "
                         "suppressed below each metric's minimum n)"},
         tag="accounts")
def specialist(user_id: int):
    """Return a doctor's profile with their consultation record."""
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.is_admin:
        raise NotFound("specialist not found")
    record = matching.track_records([user.id])[user.id]
    return jsonify({**user_json(user), "open_cases": open_case_counts([user.id]).get(user.id, 0),
                    "stats": record.as_json(), "track_record": record.metrics_json()})
