"""Doctor evaluation by role, and blinded peer review of signed opinions."""

import pytest

Q = "from=2025-01-01&to=2025-01-31"


def test_own_evaluation_is_full(api_as, mworld):
    r = api_as(mworld["dA1"]).get(f"/api/users/{mworld['dA1']}/evaluation?{Q}")
    assert r.status_code == 200, r.json
    assert r.json["scope"] == "full"
    pool = {m["code"]: m for m in r.json["against"]["pool"]}
    assert pool["cases_received"]["value"] == 4
    assert pool["cases_received"]["peer"]["n_peers"] == 2  # dA2 and dB
    specialty = {m["code"]: m for m in r.json["against"]["specialty"]}
    # dA2, dB and dC: dA1 reads the first two on the pool's dashboard, but dC (no pool of theirs)
    # would be the only unseen peer, whose figure the quartiles would give away.
    assert specialty["cases_received"]["peer"] is None
    assert specialty["cases_received"]["peer_withheld"] == "too_few_peers"
    assert specialty["mean_rating"]["suppressed"] is True  # three ratings, minimum five
    assert r.json["peer_review"] == {"n": 0, "agree": 0, "minor": 0, "major": 0, "agreement_pct": None}


def test_specialty_peers_compared_once_enough_are_unseen(api_as, mworld, make_user):
    url = f"/api/users/{mworld['dA1']}/evaluation?{Q}"

    def specialty(viewer) -> dict:
        ev = api_as(viewer).get(url).json
        assert ev["scope"] == "full"
        return {m["code"]: m for m in ev["against"]["specialty"]}["cases_received"]

    for _ in range(3):
        make_user(specialty="gynecology")
    assert specialty(mworld["dA1"])["peer_withheld"] == "too_few_peers"  # dC and three more: four unseen
    make_user(specialty="gynecology")
    enough = specialty(mworld["dA1"])
    assert enough["peer"]["n_peers"] == 7  # dA2 and dB (seen on the pool's dashboard) and five unseen
    assert "peer_withheld" not in enough
    # A consortium admin (full scope) cannot open the pool's dashboard: all seven are unseen to them.
    assert specialty(mworld["cadmin"])["peer"]["n_peers"] == 7
    admin = make_user(role="admin")
    assert specialty(admin)["peer"]["n_peers"] == 7


@pytest.mark.parametrize(("who", "scope"), [("cadmin", "full"), ("dB", "public"), ("outsider", "public")])
def test_who_sees_what(api_as, mworld, who, scope):
    r = api_as(mworld[who]).get(f"/api/users/{mworld['dA1']}/evaluation?{Q}")
    assert r.status_code == 200, r.json
    assert r.json["scope"] == scope
    if scope == "public":
        assert set(r.json) == {"user", "period", "scope", "public"}
        assert r.json["public"] == {"cases_received": 4.0, "median_hours_to_opinion": None, "mean_rating": None}


def test_pool_coordinator_sees_members(api_as, mworld, make_user, app):
    from app.extensions import db
    from app.orgs.models import OrgMember

    coord = make_user()
    with app.app_context():
        db.session.add(OrgMember(org_id=mworld["pool"], user_id=coord, role="coordinator"))
        db.session.commit()
    assert api_as(coord).get(f"/api/users/{mworld['dA1']}/evaluation").json["scope"] == "full"
    assert api_as(coord).get("/api/users/999999/evaluation").status_code == 404


def test_blinded_peer_review(make_case_in_progress, api_as, make_user):
    case_id, ids = make_case_in_progress()
    consultant = api_as(ids["consultant"])
    r = consultant.post(f"/api/cases/{case_id}/opinion", json={"diagnosis": "子宫肌瘤", "recommendations": "随访"})
    assert r.status_code == 200, r.json
    colleague = make_user(specialty="gynecology")
    reviewer = api_as(colleague)
    offered = reviewer.get("/api/peer-reviews/next").json["item"]
    assert offered["case_id"] == case_id
    assert offered["opinion"]["diagnosis"] == "子宫肌瘤"
    assert "signed_by" not in offered["opinion"]
    assert "author" not in str(offered)
    # A platform administrator of the same specialty is offered nothing (the case is a 404 to them).
    admin = make_user(specialty="gynecology", role="admin")
    assert api_as(admin).get("/api/peer-reviews/next").json["item"] is None
    assert api_as(admin).get(f"/api/cases/{case_id}").status_code == 404
    # Not reviewable: another specialty, the author, the owner.
    for uid in (make_user(specialty="radiology"), ids["consultant"], ids["owner"]):
        assert api_as(uid).post("/api/peer-reviews", json={"case_id": case_id, "score": "agree"}).status_code == 404
    assert reviewer.post("/api/peer-reviews", json={"case_id": case_id, "score": "major"}).status_code == 400
    assert reviewer.post("/api/peer-reviews", json={"case_id": case_id, "score": "wrong"}).status_code == 400
    r = reviewer.post("/api/peer-reviews", json={"case_id": case_id, "score": "major",
                                                                 "teaching_note": "应先排除子宫肉瘤"})
    assert r.status_code == 201, r.json
    assert reviewer.post("/api/peer-reviews", json={"case_id": case_id, "score": "agree"}).status_code == 409
    assert reviewer.get("/api/peer-reviews/next").json["item"] is None
    ev = consultant.get(f"/api/users/{ids['consultant']}/evaluation").json
    assert ev["peer_review"] == {"n": 1, "agree": 0, "minor": 0, "major": 1, "agreement_pct": 0.0}


def test_a_double_submitted_review_is_one_review_and_a_409(app, make_case_in_progress, api_as, make_user,
                                                           token_for, monkeypatch):
    """Two identical reviews at once (a double tap): one is recorded, the other is told it exists, no 500."""
    import threading
    import time

    from app.metrics import evaluation
    from tests.support.live import ThreadServer, race

    case_id, ids = make_case_in_progress()
    r = api_as(ids["consultant"]).post(f"/api/cases/{case_id}/opinion",
                                       json={"diagnosis": "子宫肌瘤", "recommendations": "随访"})
    assert r.status_code == 200, r.json
    reviewer = make_user(specialty="gynecology")
    # Both requests pass the eligibility and the "already reviewed?" look-up before either inserts.
    both_checked = threading.Barrier(2)
    eligible = evaluation._eligible_opinion

    def in_step(user, case):
        opinion = eligible(user, case)
        try:
            both_checked.wait(5)
        except threading.BrokenBarrierError:
            time.sleep(0.2)
        return opinion

    monkeypatch.setattr(evaluation, "_eligible_opinion", in_step)
    token = token_for(reviewer)
    body = {"case_id": case_id, "score": "major", "teaching_note": "应先排除子宫肉瘤"}
    with ThreadServer(app) as server:
        results = race(server, {n: (token, "POST", "/api/peer-reviews", body) for n in ("a", "b")})
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [201, 409], {n: (r.status_code, r.text[:200]) for n, r in results.items()}
    loser = next(r for r in results.values() if r.status_code == 409)
    assert loser.json()["error"] == "you already reviewed this opinion"
    ev = api_as(ids["consultant"]).get(f"/api/users/{ids['consultant']}/evaluation").json
    assert ev["peer_review"]["n"] == 1
