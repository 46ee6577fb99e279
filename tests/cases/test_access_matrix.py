"""Every case route, for every role: walked from app.url_map, so a route added later is covered.

outsider, platform admin and removed participant → 404 "case not found" (existence not revealed);
participant on an action its role lacks → 403; owner and consultant → what ALLOWED says.
Denied attempts land in the audit log.
"""

import re

import pytest
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.cases.permissions import ALLOWED, CONSULTANT, OWNER, PARTICIPANT
from app.extensions import db

CASE_PREFIX = "/api/cases/<int:case_id>"
DUMMY = {"sop": "2.25.1", "series_uid": "2.25.2", "attachment_id": "999999", "user_id": "999999",
         "annotation_id": "999999", "link_id": "999999"}


def case_rules(app):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(CASE_PREFIX):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def url_for_rule(rule, case_id: int) -> str:
    url = rule.rule.replace("<int:case_id>", str(case_id))
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: DUMMY[m.group(1)], url)


@pytest.fixture
def world(api_as, make_user, make_case):
    """A case in progress: owner, consultant, a participant, a removed participant, an outsider."""
    ids = {name: make_user(specialty=s) for name, s in (
        ("owner", "general_practice"), ("consultant", "gynecology"), ("participant", "radiology"),
        ("removed", "pathology"), ("outsider", "cardiology"))}
    ids["admin"] = make_user(role="admin")
    case_id = make_case(ids["owner"], specialty="gynecology")
    owner, consultant = api_as(ids["owner"]), api_as(ids["consultant"])
    assert owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": ids["consultant"]}).status_code == 200
    assert consultant.post(f"/api/cases/{case_id}/accept").status_code == 200
    for who, discipline in (("participant", "radiology"), ("removed", "pathology")):
        r = consultant.post(f"/api/cases/{case_id}/participants", json={"user_id": ids[who], "discipline": discipline})
        assert r.status_code == 201
    assert consultant.delete(f"/api/cases/{case_id}/participants/{ids['removed']}").status_code == 204
    return case_id, ids


def call(api, method, url):
    kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return getattr(api, method.lower())(url, **kwargs)


def test_every_case_route_declares_its_permission(app):
    rules = list(case_rules(app))
    assert len(rules) >= 20
    for rule, _method in rules:
        assert hasattr(app.view_functions[rule.endpoint], "case_action"), f"{rule.rule} is not a case_route"


@pytest.mark.parametrize("who", ["outsider", "admin", "removed"])
def test_people_off_the_case_get_404_everywhere_and_it_is_audited(app, api_as, world, who):
    case_id, ids = world
    api = api_as(ids[who])
    attempts = 0
    for rule, method in case_rules(app):
        r = call(api, method, url_for_rule(rule, case_id))
        assert r.status_code == 404, (who, method, rule.rule, r.status_code)
        assert r.json == {"error": "case not found"}, (method, rule.rule)
        attempts += 1
    with app.app_context():
        denied = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.user_id == ids[who], AuditEvent.case_id == case_id)).all()
    assert len(denied) == attempts
    assert {e.status for e in denied} == {404}


@pytest.mark.parametrize("role", [OWNER, CONSULTANT, PARTICIPANT])
def test_roles_get_exactly_what_their_permissions_allow(app, api_as, world, role):
    case_id, ids = world
    api = api_as(ids[role])
    for rule, method in case_rules(app):
        action = app.view_functions[rule.endpoint].case_action
        r = call(api, method, url_for_rule(rule, case_id))
        body = r.get_json(silent=True) or {}
        assert body.get("error") != "case not found", (role, method, rule.rule)
        if action in ALLOWED[role]:
            assert r.status_code != 403, (role, method, rule.rule, body)
        else:
            assert r.status_code == 403, (role, method, rule.rule, r.status_code, body)
            assert body["error"].startswith("your role on this case does not allow")
    # The walk changed nothing that matters: the case is still being worked on.
    assert api_as(ids["owner"]).get(f"/api/cases/{case_id}").json["status"] == "accepted"


def test_participant_denials_are_audited_with_403(app, api_as, world):
    case_id, ids = world
    api = api_as(ids["participant"])
    assert api.post(f"/api/cases/{case_id}/accept").status_code == 403
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.user_id == ids["participant"], AuditEvent.status == 403)).all()
    assert [(r.action, r.case_id) for r in rows] == [("accept", case_id)]


def test_removed_participant_loses_access_at_once(api_as, world):
    case_id, ids = world
    assert api_as(ids["removed"]).get("/api/cases").json["items"] == []
    assert api_as(ids["participant"]).get(f"/api/cases/{case_id}").status_code == 200
    assert [c["id"] for c in api_as(ids["participant"]).get("/api/cases").json["items"]] == [case_id]
