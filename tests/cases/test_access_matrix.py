"""Every case route, for every role: walked from app.url_map, so a route added later is covered.

outsider, platform admin and removed participant → 404 "case not found" (existence not revealed);
participant on an action its role lacks → 403; owner and consultant → what ALLOWED says.
Denied attempts land in the audit log.
"""

import re

import pytest
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.cases.permissions import ALLOWED, CONSULTANT, COORDINATOR, OWNER, PARTICIPANT, Action
from app.extensions import db
from tests.support.permissions import assert_require_ids_agrees

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
def app_overrides():
    # Each test here walks every route as one user, most of them refused: past HTTP_REFUSALS_PER_MINUTE
    # (20) the answer would be 429 (tests/audit/test_audit.py checks that); here each route's own is.
    return {"HTTP_REFUSALS_PER_MINUTE": 100_000}


@pytest.fixture
def world(make_case_in_progress, make_user):
    """A case in progress: owner, consultant, a participant, a removed participant, an outsider."""
    case_id, ids = make_case_in_progress(
        users={name: {"specialty": s} for name, s in (
            ("owner", "general_practice"), ("participant", "radiology"), ("removed", "pathology"),
            ("outsider", "cardiology"))},
        participants={"participant": "radiology", "removed": "pathology"}, removed=("removed",),
        specialty="gynecology")
    ids["admin"] = make_user(role="admin")
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


NOTHING = {"items": [], "total": 0, "total_capped": False}  # a search that finds nothing, and counts nothing


@pytest.mark.parametrize("who", ["outsider", "admin", "removed"])
def test_search_never_returns_or_counts_a_case_off_your_list(api_as, world, who):
    api = api_as(world[1][who])
    for params in ({"q": "盆腔包块"}, {"q": "良性 恶性"}, {"specialty": "gynecology"}, {"status": "accepted"},
                   {"waiting_for_me": "true"}, {}):
        assert api.get("/api/cases", query_string=params).json == NOTHING, (who, params)
    hits = api_as(world[1]["participant"]).get("/api/cases", query_string={"q": "盆腔包块"}).json
    assert [c["id"] for c in hits["items"]] == [world[0]]
    assert hits["total"] == 1


def test_the_id_only_check_decides_as_the_case_routes_do(app, world, make_case):
    case_id, ids = world
    assert_require_ids_agrees(app, case_id, ids)
    draft = make_case(ids["owner"])
    assert_require_ids_agrees(app, draft, {"owner": ids["owner"], "consultant": ids["consultant"]})
    assert_require_ids_agrees(app, 999_999, {"owner": ids["owner"]})  # no such case: 404 for both


def test_removed_participant_loses_access_at_once(api_as, world):
    case_id, ids = world
    assert api_as(ids["removed"]).get("/api/cases").json["items"] == []
    assert api_as(ids["participant"]).get(f"/api/cases/{case_id}").status_code == 200
    assert [c["id"] for c in api_as(ids["participant"]).get("/api/cases").json["items"]] == [case_id]


# ---- organizations (issue 13): a case waiting in a consortium pool's triage queue ------------

@pytest.fixture
def pooled(api_as, make_user, make_institution, make_case):
    """A gynecology case shared to a consortium and waiting in its pool, and people around it."""
    hospital = make_institution(level="county")
    ids = {"owner": make_user(institution_id=hospital), "admin": make_user(role="admin")}
    for name in ("coordinator", "other_coordinator", "group_member", "consortium_admin", "other_consortium_member",
                 "outsider"):
        ids[name] = make_user(specialty="gynecology")
    admin = api_as(ids["admin"])

    def org(body, members):
        org_id = admin.post("/api/orgs", json=body).json["id"]
        for who, role in members:
            r = admin.post(f"/api/orgs/{org_id}/members", json={"user_id": ids[who], "role": role})
            assert r.status_code == 201
        return org_id

    consortium = org({"kind": "consortium", "name": "医联体"}, [("consortium_admin", "admin")])
    admin.post(f"/api/orgs/{consortium}/institutions", json={"institution_id": hospital, "side": "requester"})
    pool = org({"kind": "doctor_group", "name": "妇科组", "parent_id": consortium},
               [("coordinator", "coordinator"), ("group_member", "member")])
    org({"kind": "doctor_group", "name": "乳腺组", "parent_id": consortium}, [("other_coordinator", "coordinator")])
    other = org({"kind": "consortium", "name": "另一个医联体"}, [("other_consortium_member", "member")])
    org({"kind": "doctor_group", "name": "另一个妇科组", "parent_id": other}, [("other_consortium_member", "member")])
    admin.post(f"/api/orgs/{consortium}/rules", json={"priority": 1, "specialty": "gynecology", "target_org_id": pool})
    case_id = make_case(ids["owner"], specialty="gynecology")
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/share", json={"org_id": consortium})
    assert r.status_code == 200
    assert r.json["pool"]["id"] == pool
    return case_id, ids


@pytest.mark.parametrize("who", ["other_coordinator", "group_member", "consortium_admin", "other_consortium_member",
                                 "outsider", "admin"])
def test_org_roles_off_the_pool_get_404_everywhere(app, api_as, pooled, who):
    case_id, ids = pooled
    api = api_as(ids[who])
    for rule, method in case_rules(app):
        r = call(api, method, url_for_rule(rule, case_id))
        assert r.status_code == 404, (who, method, rule.rule, r.status_code)
        assert r.json == {"error": "case not found"}, (method, rule.rule)
    assert api.get("/api/cases").json["items"] == []
    assert api.get("/api/cases", query_string={"q": "盆腔包块"}).json == NOTHING


def test_pool_coordinator_gets_exactly_what_the_role_allows(app, api_as, pooled):
    case_id, ids = pooled
    api = api_as(ids["coordinator"])
    for rule, method in case_rules(app):
        action = app.view_functions[rule.endpoint].case_action
        r = call(api, method, url_for_rule(rule, case_id))
        body = r.get_json(silent=True) or {}
        assert body.get("error") != "case not found", (method, rule.rule)
        if action in ALLOWED[COORDINATOR]:
            assert r.status_code != 403, (method, rule.rule, body)
        else:
            assert r.status_code == 403, (method, rule.rule, r.status_code, body)
    assert {Action.VIEW, Action.ASSIGN} <= ALLOWED[COORDINATOR]
    assert not ALLOWED[COORDINATOR] & {Action.CHAT, Action.WRITE_OPINION, Action.SIGN_OPINION, Action.REPORT}
    assert_require_ids_agrees(app, case_id, ids)
    # Then the specialist they assign is on the case; the group member who was not assigned is not.
    assert api.post(f"/api/cases/{case_id}/assign", json={"specialist_id": ids["group_member"]}).status_code == 200
    assert api_as(ids["group_member"]).get(f"/api/cases/{case_id}").json["role"] == CONSULTANT
