"""Organization pages: my orgs, an org (a consortium's institutions, form, pools, rules, due hours and
services), a pool's triage queue and a group's open cases.

Like the case pages they are thin: access comes from :mod:`app.orgs.permissions` (an org the user
may not see answers 404), the templates offer what ``actions_in`` / ``available_actions`` allow,
and every change goes through the JSON API from the page scripts, with the CSRF token.
"""

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from app.accounts.specialties import SPECIALTIES
from app.cases.permissions import available_actions
from app.cases.schemas import summary_json
from app.imaging import service as imaging
from app.orgs import service
from app.orgs.models import SERVICES, URGENCIES
from app.orgs.permissions import OrgAction, actions_in, lineage, require_org, root_of, visible_orgs
from app.orgs.schemas import consortium_form, suggestion_json, workload_json

bp = Blueprint("org_pages", __name__)


def my_orgs(user) -> list[dict]:
    """Return the orgs the user belongs to (or whose consortium their hospital is in), each with what they may do."""
    return [{"org": o, "actions": actions_in(user, o)} for o in visible_orgs(user)]


@bp.get("/orgs")
@login_required
def org_list():
    """List the user's orgs with links to what each lets them do (queue, group cases, administration)."""
    return render_template("orgs/list.html", orgs=my_orgs(current_user))


@bp.get("/orgs/<int:org_id>")
@login_required
def org_page(org_id: int):
    """Show an org: members, a consortium's institutions and form, pools, routing rules and settings."""
    org = require_org(current_user, org_id, OrgAction.VIEW)
    actions = actions_in(current_user, org)
    pools = service.pools_under(org)
    manage = OrgAction.MANAGE in actions
    institutions = service.institutions(org)
    return render_template(
        "orgs/org.html", org=org, actions=actions, members=service.members(org), institutions=institutions,
        pools=[{"org": p, "members": service.members(p)} for p in pools],
        rules=service.rules(org) if org.kind == "consortium" else [],
        parent=lineage(org)[1] if org.parent_id else None, form=consortium_form([ci.side for ci in institutions]),
        urgencies=URGENCIES, services=SERVICES, specialties=SPECIALTIES,
        candidates=service.member_candidates(org) if manage else [],
        all_institutions=service.all_institutions() if manage else [])


@bp.get("/orgs/<int:org_id>/queue")
@login_required
def queue_page(org_id: int):
    """Show a pool's triage queue: waiting cases by urgency and due time, suggestions, assign and reroute."""
    org = require_org(current_user, org_id, OrgAction.TRIAGE)
    items = [{"case": summary_json(case, viewer=current_user), "studies": imaging.case_studies(case),
              "suggestions": [suggestion_json(r) for r in ranked],
              "actions": available_actions(current_user, case)}
             for case, ranked in service.queue(org)]
    others = [p for p in service.pools_under(root_of(org)) if p.id != org.id]
    return render_template("orgs/queue.html", org=org, items=items, others=others)


@bp.get("/orgs/<int:org_id>/cases")
@login_required
def group_page(org_id: int):
    """Show a department's or group's open cases and who holds each (the group inbox)."""
    org = require_org(current_user, org_id, OrgAction.WORKLOAD)
    cases, people = service.workload(org)
    view = workload_json(cases, people, viewer=current_user)
    return render_template("orgs/group.html", org=org, cases=view["items"], people=view["members"])
