"""Cases API: create, list, detail."""

from flask import Blueprint, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.cases import service
from app.cases.permissions import Action, require
from app.cases.schemas import CaseCreate, case_json
from app.core.openapi import api_doc
from app.core.schemas import parse_body
from app.extensions import db
from app.imaging import service as imaging

bp = Blueprint("cases", __name__, url_prefix="/api/cases")


def case_detail_json(case) -> dict:
    """Serialise a case with its studies, attachments and the people on it."""
    return {
        **case_json(case),
        "studies": imaging.case_studies(case),
        "attachments": [
            {"id": a.id, "filename": a.filename, "kind": a.kind, "size": a.size,
             "content_type": a.content_type, "url": f"/api/cases/{case.id}/attachments/{a.id}"}
            for a in imaging.case_attachments(case)
        ],
        "participants": [],
        "opinion": None,
    }


@bp.post("")
@api_login_required
@api_doc(body=CaseCreate, responses={201: "the new draft case", 400: "a required field is missing or invalid"})
def create_case():
    """Create a draft case with its clinical question."""
    data = parse_body(CaseCreate)
    case = service.create_case(owner=current_user, data=data)
    db.session.commit()
    return jsonify(case_detail_json(case)), 201


@bp.get("")
@api_login_required
@api_doc(responses={200: "the cases the caller may see"})
def list_cases():
    """List the cases the caller may see, newest first."""
    return jsonify({"items": [case_json(c) for c in service.list_cases(viewer=current_user)]})


@bp.get("/<int:case_id>")
@api_login_required
@api_doc(responses={200: "the case with studies and attachments", 404: "no such case visible to you"})
def get_case(case_id: int):
    """Return a case with its studies, series, attachments and people."""
    case = require(current_user, case_id, Action.VIEW)
    return jsonify(case_detail_json(case))
