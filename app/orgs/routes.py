"""Organizations API: orgs, members, consortium institutions, routing rules, the triage queue,
the group workload view, assigning and rerouting pooled cases, and the away switch."""

from flask import Blueprint, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.accounts.schemas import user_json
from app.cases.permissions import Action, case_route
from app.cases.schemas import case_json
from app.cases.service import is_overdue
from app.core.errors import Forbidden
from app.core.openapi import api_doc
from app.core.schemas import parse_body, parse_query
from app.core.time import isoformat
from app.extensions import db
from app.orgs import service
from app.orgs.permissions import OrgAction, require_org, visible_orgs
from app.orgs.schemas import (
    AwayIn,
    InstitutionIn,
    MemberIn,
    OrgCreate,
    OrgQuery,
    OrgUpdate,
    RuleIn,
    decision_json,
    org_json,
    pool_ref,
    rule_json,
    suggestion_json,
    workload_json,
)

bp = Blueprint("orgs", __name__, url_prefix="/api")


def _org(org) -> dict:
    return org_json(org, members=service.members(org), institutions=service.institutions(org),
                    children=service.children(org))


@bp.get("/orgs")
@api_login_required
@api_doc(query=OrgQuery, responses={200: "the orgs the caller belongs to (platform admins: all)"})
def list_orgs():
    """List the orgs the caller belongs to, and the consortia their institution is in (``kind`` filters)."""
    query = parse_query(OrgQuery)
    return jsonify({"items": [_org(o) for o in visible_orgs(current_user, query.kind)]})


@bp.post("/orgs")
@api_login_required
@api_doc(body=OrgCreate, responses={201: "the new org", 403: "platform admins, or an admin of the parent org",
                                    404: "no such parent org visible to you"})
def create_org():
    """Create a department, doctor group (pool) or consortium."""
    body = parse_body(OrgCreate)
    if body.parent_id is not None:
        require_org(current_user, body.parent_id, OrgAction.MANAGE)
    elif not current_user.is_admin:
        raise Forbidden("only platform admins create top-level orgs")
    org = service.create_org(data=body)
    db.session.commit()
    return jsonify(_org(org)), 201


@bp.get("/orgs/<int:org_id>")
@api_login_required
@api_doc(responses={200: "the org", 404: "no such org visible to you"})
def get_org(org_id: int):
    """Return an org with its members, institutions, form and child orgs."""
    return jsonify(_org(require_org(current_user, org_id, OrgAction.VIEW)))


@bp.patch("/orgs/<int:org_id>")
@api_login_required
@api_doc(body=OrgUpdate, responses={200: "the org", 403: "org admins only"})
def update_org(org_id: int):
    """Change an org's name, due hours per urgency, services offered or peer naming (org admins)."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    service.update_org(org=org, data=parse_body(OrgUpdate))
    db.session.commit()
    return jsonify(_org(org))


@bp.post("/orgs/<int:org_id>/members")
@api_login_required
@api_doc(body=MemberIn, responses={201: "added", 200: "the member's role changed", 403: "org admins only"})
def add_member(org_id: int):
    """Add a member, coordinator or admin to the org, or change their role (org admins)."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    body = parse_body(MemberIn)
    member, created = service.set_member(org=org, user_id=body.user_id, role=body.role)
    db.session.commit()
    return jsonify({"user": user_json(member.user), "role": member.role}), 201 if created else 200


@bp.delete("/orgs/<int:org_id>/members/<int:user_id>")
@api_login_required
@api_doc(responses={204: "removed; what the role gave ends at once", 403: "org admins only"})
def remove_member(org_id: int, user_id: int):
    """Remove someone from the org (org admins)."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    service.remove_member(org=org, user_id=user_id, actor=current_user)
    db.session.commit()
    return "", 204


@bp.post("/orgs/<int:org_id>/institutions")
@api_login_required
@api_doc(body=InstitutionIn, responses={201: "added", 200: "the side changed", 403: "consortium admins only"})
def add_institution(org_id: int):
    """Add a member institution to a consortium as provider, requester or both (consortium admins)."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    body = parse_body(InstitutionIn)
    _, created = service.set_institution(org=org, institution_id=body.institution_id, side=body.side)
    db.session.commit()
    return jsonify(_org(org)), 201 if created else 200


@bp.delete("/orgs/<int:org_id>/institutions/<int:institution_id>")
@api_login_required
@api_doc(responses={204: "removed", 403: "consortium admins only"})
def remove_institution(org_id: int, institution_id: int):
    """Take an institution out of a consortium (consortium admins)."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    service.remove_institution(org=org, institution_id=institution_id)
    db.session.commit()
    return "", 204


@bp.get("/orgs/<int:org_id>/rules")
@api_login_required
@api_doc(responses={200: "the consortium's routing rules in the order they are tried"})
def list_rules(org_id: int):
    """List a consortium's routing rules (whoever may see the consortium)."""
    org = require_org(current_user, org_id, OrgAction.VIEW)
    return jsonify({"items": [rule_json(r) for r in service.rules(org)]})


@bp.post("/orgs/<int:org_id>/rules")
@api_login_required
@api_doc(body=RuleIn, responses={201: "the new rule", 403: "consortium admins only",
                                 409: "a rule with this priority exists"})
def add_rule(org_id: int):
    """Add a routing rule: specialty (and urgency) → a pool under the consortium or a specialist."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    rule = service.add_rule(org=org, data=parse_body(RuleIn))
    db.session.commit()
    return jsonify(rule_json(rule)), 201


@bp.delete("/orgs/<int:org_id>/rules/<int:rule_id>")
@api_login_required
@api_doc(responses={204: "deleted", 403: "consortium admins only"})
def delete_rule(org_id: int, rule_id: int):
    """Delete a routing rule (consortium admins)."""
    org = require_org(current_user, org_id, OrgAction.MANAGE)
    service.delete_rule(org=org, rule_id=rule_id)
    db.session.commit()
    return "", 204


def _queued_json(case) -> dict:
    return {**case_json(case), "due_at": isoformat(case.due_at), "overdue": is_overdue(case),
            "submitted_at": isoformat(case.submitted_at)}


@bp.get("/orgs/<int:org_id>/queue")
@api_login_required
@api_doc(responses={200: "cases waiting for triage, by urgency and due time, with ranked suggestions",
                    403: "the org's coordinators only"})
def org_queue(org_id: int):
    """Return the pool's triage queue with suggested specialists and their reasons (coordinators)."""
    org = require_org(current_user, org_id, OrgAction.TRIAGE)
    return jsonify({"items": [{**_queued_json(case), "suggestions": [suggestion_json(r) for r in ranked]}
                              for case, ranked in service.queue(org)]})


@bp.get("/orgs/<int:org_id>/cases")
@api_login_required
@api_doc(responses={200: "the group's open cases and who holds each, and each member's open count",
                    403: "coordinators and admins of a department or doctor group"})
def org_cases(org_id: int):
    """Return a department's or group's open cases and who holds each (the workload view)."""
    org = require_org(current_user, org_id, OrgAction.WORKLOAD)
    cases, people = service.workload(org)
    return jsonify(workload_json(cases, people, viewer=current_user))


@bp.get("/cases/<int:case_id>/routing")
@case_route(Action.VIEW)
@api_doc(responses={200: "every routing decision: where the case went, which rule or person chose, why"},
         tag="cases")
def routing_trail(case):
    """Return the case's routing trail, oldest first, with the suggestions shown at each assignment."""
    return jsonify({"pool": pool_ref(case.pool_id), "items": [decision_json(d) for d in service.decisions(case)]})


def _away_json(row) -> dict:
    return {"away_until": isoformat(row.away_until) if row else None, "note": row.note if row else ""}


@bp.get("/me/away")
@api_login_required
@api_doc(responses={200: "until when the caller is away (null: available)"}, tag="accounts")
def get_away():
    """Return the caller's away setting."""
    return jsonify(_away_json(service.away_of(current_user)))


@bp.put("/me/away")
@api_login_required
@api_doc(body=AwayIn, responses={200: "saved; away specialists are not suggested and rules skip them"},
         tag="accounts")
def set_away():
    """Mark yourself away until a date (``until`` null: available again)."""
    body = parse_body(AwayIn)
    row = service.set_away(user=current_user, until=body.until, note=body.note)
    db.session.commit()
    return jsonify(_away_json(row))

