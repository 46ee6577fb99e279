"""Two coordinators assign the same case at the same moment over real HTTP: exactly one wins."""

import threading

from app.cases import permissions
from app.cases.permissions import Action
from tests.conftest import ApiClient
from tests.support.live import ThreadServer, race


def test_two_coordinators_assigning_at_once_leave_one_winner(app, world, pooled_case, api_as, make_user, token_for):
    coord2 = make_user(institution_id=world["tertiary"])
    assert api_as(world["cadmin"]).post(f"/api/orgs/{world['pool']}/members",
                                        json={"user_id": coord2, "role": "coordinator"}).status_code == 201
    tokens = {world["coord"]: (token_for(world["coord"]), world["gyn"]), coord2: (token_for(coord2), world["gyn2"])}
    with ThreadServer(app) as server:
        results = race(server, {c: (token, "POST", f"/api/cases/{pooled_case}/assign", {"specialist_id": specialist})
                                for c, (token, specialist) in tokens.items()})
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {c: (r.status_code, r.text[:200]) for c, r in results.items()}
    winner = next(c for c, r in results.items() if r.status_code == 200)
    case = api_as(world["gp"]).get(f"/api/cases/{pooled_case}").json
    assert case["consultant"]["id"] == tokens[winner][1]
    steps = [e["action"] for e in api_as(world["gp"]).get(f"/api/cases/{pooled_case}/timeline").json["items"]]
    assert steps.count("assign") == 1


def after_the_check(monkeypatch, action, request) -> list:
    """Make the next request checked for ``action`` run ``request`` (in its own thread, so on its own
    connection) once its access check has passed and before it writes; return the list that
    receives that request's answer."""
    real, answers = permissions.authorize_case, []

    def authorize_then_let_the_other_in(user, case_id, checked, **kwargs):
        case = real(user, case_id, checked, **kwargs)
        if checked is action and not answers:
            t = threading.Thread(target=lambda: answers.append(request()))
            t.start()
            t.join(30)
        return case

    monkeypatch.setattr(permissions, "authorize_case", authorize_then_let_the_other_in)
    return answers


def test_accept_overtaken_by_a_reroute_is_refused(app, world, pooled_case, api_as, make_user, token_for, monkeypatch):
    """The designated specialist's accept, checked while they were still designated, lands after a
    coordinator rerouted the case away from them: it must not accept a case nobody holds."""
    cadmin, coord = api_as(world["cadmin"]), api_as(world["coord"])
    other = cadmin.post("/api/orgs", json={"kind": "doctor_group", "name": "肿瘤会诊组",
                                           "parent_id": world["consortium"]}).json["id"]
    coord2 = make_user(institution_id=world["tertiary"])
    assert cadmin.post(f"/api/orgs/{other}/members", json={"user_id": coord2, "role": "coordinator"}).status_code == 201
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    elsewhere = ApiClient(app.test_client(), token_for(world["coord"]))
    rerouted = after_the_check(monkeypatch, Action.ACCEPT,
                               lambda: elsewhere.post(f"/api/cases/{pooled_case}/reroute", json={"org_id": other}))
    r = api_as(world["gyn"]).post(f"/api/cases/{pooled_case}/accept")
    assert [x.status_code for x in rerouted] == [200]
    assert r.status_code == 409, r.json
    case = api_as(world["gp"]).get(f"/api/cases/{pooled_case}").json
    assert (case["status"], case["consultant"], case["pool"]["id"]) == ("submitted", None, other)
    assert [i["id"] for i in api_as(coord2).get(f"/api/orgs/{other}/queue").json["items"]] == [pooled_case]


def test_reroute_overtaken_by_an_assignment_is_refused(app, world, pooled_case, api_as, make_user, token_for,
                                                      monkeypatch):
    """A coordinator reroutes a case a second coordinator has just assigned: the reroute must not drop
    the new specialist unseen (they were told of the assignment and would never be told it ended)."""
    cadmin = api_as(world["cadmin"])
    other = cadmin.post("/api/orgs", json={"kind": "doctor_group", "name": "肿瘤会诊组",
                                           "parent_id": world["consortium"]}).json["id"]
    coord2 = make_user(institution_id=world["tertiary"])
    for pool in (world["pool"], other):
        assert cadmin.post(f"/api/orgs/{pool}/members", json={"user_id": coord2, "role": "coordinator"}).status_code \
            == 201
    second = ApiClient(app.test_client(), token_for(coord2))
    assigned = after_the_check(monkeypatch, Action.REROUTE, lambda: second.post(
        f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]}))
    r = api_as(world["coord"]).post(f"/api/cases/{pooled_case}/reroute", json={"org_id": other})
    assert [x.status_code for x in assigned] == [200]
    assert r.status_code == 409, r.json
    case = api_as(world["gp"]).get(f"/api/cases/{pooled_case}").json
    assert (case["consultant"]["id"], case["pool"]["id"]) == (world["gyn"], world["pool"])
