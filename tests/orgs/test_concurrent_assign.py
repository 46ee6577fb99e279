"""Two coordinators assign the same case at the same moment over real HTTP: exactly one wins."""

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
