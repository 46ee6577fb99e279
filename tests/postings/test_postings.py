"""Supply and demand: posting, ranking a hand-made set with reasons, accepting a match."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.cases.models import Case
from app.core.time import utcnow
from app.extensions import db
from app.orgs.models import ConsortiumInstitution, OrgMember


@pytest.fixture
def market(make_institution, make_user, api_as, app):
    """A county hospital needing pathology reads and five offers, one with a measured record."""
    inst = {
        "county": make_institution(level="county", region="湖南省 云溪县"),
        "s1": make_institution(level="tertiary", region="湖南省 长沙市"),
        "s2": make_institution(level="tertiary", region="湖北省 武汉市"),
        "s3": make_institution(level="provincial", region="湖南省 云溪县"),
        "s4": make_institution(level="tertiary", region="湖南省 长沙市"),
        "s6": make_institution(level="community", region="湖南省 云溪县"),
        "other": make_institution(level="county", region="湖南省 云溪县"),
    }
    people = {k: make_user(institution_id=v, specialty="pathology") for k, v in inst.items()}
    gp = api_as(people["county"])
    demand = gp.post("/api/postings", json={"kind": "demand", "institution_id": inst["county"],
                                            "service": "remote_pathology", "specialty": "pathology",
                                            "description": "远程病理阅片", "capacity_per_month": 30})
    assert demand.status_code == 201, demand.json
    offers = {}
    for key, specialty, cap, service in (("s1", "pathology", 40, "remote_pathology"),
                                         ("s2", "pathology", 40, "remote_pathology"),
                                         ("s3", "pathology", 10, "remote_pathology"),
                                         ("s4", "radiology", 40, "remote_pathology"),
                                         ("s6", "pathology", 30, "remote_pathology"),
                                         ("other", "pathology", 99, "training")):
        r = api_as(people[key]).post("/api/postings", json={
            "kind": "supply", "institution_id": inst[key], "service": service, "specialty": specialty,
            "capacity_per_month": cap})
        assert r.status_code == 201, r.json
        offers[key] = r.json["id"]
    with app.app_context():  # s2 answered ten cases within their due time in the last year
        now = utcnow()
        for i in range(10):
            db.session.add(Case(owner_id=people["county"], consultant_id=people["s2"], title="t",
                                clinical_question="q", status="answered", submitted_at=now - timedelta(days=20 + i),
                                due_at=now - timedelta(days=18 + i), answered_at=now - timedelta(days=19 + i)))
        db.session.commit()
    return {"inst": inst, "people": people, "demand": demand.json["id"], "offers": offers}


def test_matches_ranked_with_reasons(market, api_as):
    r = api_as(market["people"]["county"]).get(f"/api/postings/{market['demand']}/matches")
    assert r.status_code == 200, r.json
    items = r.json["items"]
    offers = market["offers"]
    assert [i["posting"]["id"] for i in items] == [offers["s2"], offers["s1"], offers["s3"], offers["s6"],
                                                   offers["s4"]]
    assert [i["score"] for i in items] == [84.0, 83.0, 80.0, 80.0, 63.0]
    top = items[0]["reasons"]
    assert "same specialty: pathology" in top
    assert "capacity 40/month covers 30/month" in top
    assert "tertiary provider for a county requester" in top
    # Only the band of the provider's record, not its exact share nor its n (see performance_band).
    assert "provider answered 90–100% within the due time (last 12 months)" in top
    assert not any("n=" in x or "100%" in x.replace("90–100%", "") for x in top)
    assert "same province: 湖南省" in items[1]["reasons"]
    assert "capacity 10/month of 30/month needed" in items[2]["reasons"]
    assert "different specialty: radiology offered, pathology needed" in items[4]["reasons"]


def test_posting_validation_and_membership(market, api_as):
    gp = api_as(market["people"]["county"])
    body = {"kind": "demand", "institution_id": market["inst"]["county"], "service": "remote_pathology"}
    assert gp.post("/api/postings", json={**body, "kind": "want"}).status_code == 400
    assert gp.post("/api/postings", json={**body, "service": "surgery"}).status_code == 400
    assert gp.post("/api/postings", json={**body, "capacity_per_month": -1}).status_code == 400
    assert gp.post("/api/postings", json={**body, "institution_id": market["inst"]["s1"]}).status_code == 403
    listed = gp.get("/api/postings?kind=supply&service=remote_pathology").json["items"]
    assert len(listed) == 5
    assert gp.get("/api/postings/999999/matches").status_code == 404


def test_accept_creates_a_consortium_then_joins_it(market, api_as, make_institution, make_user):
    gp = api_as(market["people"]["county"])
    s1 = market["offers"]["s1"]
    assert api_as(market["people"]["s2"]).post(
        f"/api/postings/{market['demand']}/matches/{s1}/accept").status_code == 403
    r = gp.post(f"/api/postings/{market['demand']}/matches/{s1}/accept")
    assert r.status_code == 202, r.json  # the county accepted; the provider has not yet
    assert gp.get(f"/api/postings/{market['demand']}").json["accepted_other_id"] == s1
    provider = api_as(market["people"]["s1"])
    r = provider.post(f"/api/postings/{s1}/matches/{market['demand']}/accept")
    assert r.status_code == 201, r.json
    org = r.json
    # Whoever accepted on each side administers the new consortium.
    assert {(m["user"]["id"], m["role"]) for m in org["members"]} >= {
        (market["people"]["county"], "admin"), (market["people"]["s1"], "admin")}
    assert org["kind"] == "consortium"
    assert {(i["id"], i["side"]) for i in org["institutions"]} == {(market["inst"]["s1"], "provider"),
                                                                  (market["inst"]["county"], "requester")}
    assert org["form"] == "1-1"
    assert gp.get(f"/api/postings/{s1}").json["state"] == "matched"
    assert gp.post(f"/api/postings/{market['demand']}/matches/{s1}/accept").status_code == 409
    # A second requester matched with the same provider joins the existing consortium.
    inst = make_institution(level="county", region="湖南省 长沙市")
    other = api_as(make_user(institution_id=inst))
    s1b = api_as(market["people"]["s1"]).post("/api/postings", json={
        "kind": "supply", "institution_id": market["inst"]["s1"], "service": "remote_pathology"}).json["id"]
    d2 = other.post("/api/postings", json={"kind": "demand", "institution_id": inst,
                                           "service": "remote_pathology"}).json["id"]
    assert other.post(f"/api/postings/{d2}/matches/{s1b}/accept").status_code == 202
    r = provider.post(f"/api/postings/{s1b}/matches/{d2}/accept")  # by an admin of the consortium
    assert r.status_code == 201, r.json
    assert r.json["id"] == org["id"]
    assert org["form"] == "1-1"
    assert r.json["form"] == "1-n"
    assert other.post(f"/api/postings/{d2}/matches/{market['offers']['other']}/accept").status_code == 400


def test_one_side_alone_joins_no_consortium_and_rules_none(app, market, api_as, make_institution, make_user):
    """A match needs both institutions; joining an existing consortium needs one of its admins."""
    county, s1 = market["people"]["county"], market["people"]["s1"]
    # s1's doctor accepts the county's demand: no consortium over the county, no admin role for anyone.
    r = api_as(s1).post(f"/api/postings/{market['offers']['s1']}/matches/{market['demand']}/accept")
    assert r.status_code == 202, r.json
    assert r.json["state"] == "waiting"
    assert api_as(county).get(f"/api/postings/{market['demand']}").json["state"] == "open"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OrgMember)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsortiumInstitution)) == 0
    # The two form a consortium once the county accepts too.
    org = api_as(county).post(f"/api/postings/{market['demand']}/matches/{market['offers']['s1']}/accept").json
    # A doctor of s1 who is no admin of it accepts a newcomer: the newcomer gets a consortium of its
    # own with s1, not a place in the existing one.
    newcomer_inst = make_institution(level="community", region="湖南省 长沙市")
    newcomer = api_as(make_user(institution_id=newcomer_inst))
    colleague = api_as(make_user(institution_id=market["inst"]["s1"], specialty="pathology"))
    offer = colleague.post("/api/postings", json={"kind": "supply", "institution_id": market["inst"]["s1"],
                                                  "service": "remote_pathology"}).json["id"]
    need = newcomer.post("/api/postings", json={"kind": "demand", "institution_id": newcomer_inst,
                                                "service": "remote_pathology"}).json["id"]
    assert newcomer.post(f"/api/postings/{need}/matches/{offer}/accept").status_code == 202
    assert newcomer.get(f"/api/orgs/{org['id']}").status_code == 404
    joined = colleague.post(f"/api/postings/{offer}/matches/{need}/accept")
    assert joined.status_code == 201, joined.json
    assert joined.json["id"] != org["id"]
    assert newcomer.get(f"/api/orgs/{org['id']}").status_code == 404


@pytest.mark.parametrize(("value", "band"), [(0.0, 0), (9.99, 0), (10.0, 10), (76.5, 70), (99.9, 90), (100.0, 90)])
def test_performance_band(value, band):
    from app.postings.service import performance_band

    assert performance_band(value) == band
