"""Org routes: creating orgs, who may see them, members, institutions and the consortium form, rules."""

import pytest

from app.orgs.schemas import consortium_form

ORG_KEYS = {"id", "kind", "name", "institution", "parent_id", "members", "institutions", "form"}


@pytest.mark.parametrize(("sides", "form"), [
    (["provider", "requester"], "1-1"),
    (["provider"] + ["requester"] * 12, "1-n"),
    (["provider", "provider", "requester"], "n-1"),
    (["provider", "provider", "requester", "requester"], "n-n"),
    (["both", "requester"], "1-n"),  # both counts on each side: 1 provider, 2 requesters
    (["both", "both"], "n-n"),
    (["both"], "1-1"),
    (["provider"], None),
    ([], None),
])
def test_form_follows_from_the_sides(sides, form):
    assert consortium_form(sides) == form


def test_consortium_json_and_form_through_the_api(world, api_as, make_institution):
    cadmin = api_as(world["cadmin"])
    org = cadmin.get(f"/api/orgs/{world['consortium']}").json
    assert set(org) >= ORG_KEYS
    assert org["kind"] == "consortium"
    assert org["form"] == "1-1"
    assert org["institution"] is None
    assert {(i["id"], i["side"]) for i in org["institutions"]} == {(world["tertiary"], "provider"),
                                                                  (world["county"], "requester")}
    assert org["children"] == [{"id": world["pool"], "kind": "doctor_group", "name": "妇科会诊组"}]
    more = make_institution(level="county")
    r = cadmin.post(f"/api/orgs/{world['consortium']}/institutions", json={"institution_id": more, "side": "requester"})
    assert r.status_code == 201
    assert r.json["form"] == "1-n"
    r = cadmin.post(f"/api/orgs/{world['consortium']}/institutions", json={"institution_id": more, "side": "both"})
    assert r.status_code == 200
    assert r.json["form"] == "n-n"
    assert cadmin.delete(f"/api/orgs/{world['consortium']}/institutions/{more}").status_code == 204
    assert cadmin.get(f"/api/orgs/{world['consortium']}").json["form"] == "1-1"
    bad = cadmin.post(f"/api/orgs/{world['consortium']}/institutions", json={"institution_id": more, "side": "x"})
    assert bad.status_code == 400
    pool = cadmin.post(f"/api/orgs/{world['pool']}/institutions", json={"institution_id": more, "side": "both"})
    assert pool.status_code == 400  # only consortia have member institutions


def test_who_sees_an_org(world, api_as, make_user):
    c, pool = world["consortium"], world["pool"]
    county_doctor = make_user(institution_id=world["county"])
    seen = {
        "admin": (200, 200), "cadmin": (200, 200),  # platform admin; consortium admin (a parent's member)
        "coord": (200, 200), "gyn": (200, 200),  # the pool's members see it, and their consortium
        "gp": (200, 404),  # a doctor of a member institution sees the consortium, not the pool's insides
        "outsider": (404, 404),
    }
    for who, (consortium_status, pool_status) in seen.items():
        api = api_as(world[who])
        assert api.get(f"/api/orgs/{c}").status_code == consortium_status, who
        assert api.get(f"/api/orgs/{pool}").status_code == pool_status, who
    assert api_as(county_doctor).get(f"/api/orgs/{c}").status_code == 200
    assert api_as(world["outsider"]).get("/api/orgs/999999").json == {"error": "org not found"}
    assert api_as(world["outsider"]).get(f"/api/orgs/{2**40}").status_code == 404


def test_listing_orgs(world, api_as):
    def ids(who, query=""):
        return [o["id"] for o in api_as(world[who]).get(f"/api/orgs{query}").json["items"]]

    assert ids("admin") == [world["consortium"], world["pool"]]
    assert ids("coord") == [world["consortium"], world["pool"]]  # their hospital is a member too
    assert ids("gp") == [world["consortium"]]  # through their institution
    assert ids("cadmin", "?kind=doctor_group") == []
    assert ids("outsider") == []
    assert api_as(world["gp"]).get("/api/orgs?kind=nonsense").status_code == 400


def test_creating_orgs(world, api_as, make_institution):
    body = {"kind": "doctor_group", "name": "乳腺会诊组", "parent_id": world["consortium"]}
    assert api_as(world["coord"]).post("/api/orgs", json=body).status_code == 403  # sees it, not an admin
    assert api_as(world["outsider"]).post("/api/orgs", json=body).status_code == 404
    assert api_as(world["gp"]).post("/api/orgs", json={"kind": "consortium", "name": "x"}).status_code == 403
    r = api_as(world["cadmin"]).post("/api/orgs", json=body)
    assert r.status_code == 201
    assert r.json["parent_id"] == world["consortium"]
    assert r.json["members"] == []
    dept = api_as(world["admin"]).post("/api/orgs", json={"kind": "department", "name": "妇科"})
    assert dept.status_code == 400  # a department belongs to one institution
    dept = api_as(world["admin"]).post("/api/orgs", json={"kind": "department", "name": "妇科",
                                                          "institution_id": world["tertiary"],
                                                          "due_hours": {"urgent": 12}, "services": ["mdt"]})
    assert dept.status_code == 201, dept.json
    assert dept.json["institution"]["id"] == world["tertiary"]
    assert dept.json["due_hours"] == {"urgent": 12}
    assert api_as(world["admin"]).post("/api/orgs", json={"kind": "guild", "name": "x"}).status_code == 400
    r = api_as(world["cadmin"]).patch(f"/api/orgs/{world['consortium']}", json={"due_hours": {"routine": 48}})
    assert r.status_code == 200
    assert r.json["due_hours"] == {"routine": 48}
    assert api_as(world["coord"]).patch(f"/api/orgs/{world['consortium']}", json={"name": "y"}).status_code == 403


def test_members(world, api_as, make_user):
    pool, cadmin = world["pool"], api_as(world["cadmin"])
    doc = make_user(specialty="gynecology")
    assert api_as(world["coord"]).post(f"/api/orgs/{pool}/members", json={"user_id": doc}).status_code == 403
    assert api_as(world["outsider"]).post(f"/api/orgs/{pool}/members", json={"user_id": doc}).status_code == 404
    r = cadmin.post(f"/api/orgs/{pool}/members", json={"user_id": doc})
    assert r.status_code == 201
    assert r.json["role"] == "member"
    r = cadmin.post(f"/api/orgs/{pool}/members", json={"user_id": doc, "role": "coordinator"})
    assert r.status_code == 200
    assert r.json["role"] == "coordinator"
    assert cadmin.post(f"/api/orgs/{pool}/members", json={"user_id": doc, "role": "boss"}).status_code == 400
    assert cadmin.post(f"/api/orgs/{pool}/members", json={"user_id": 999999}).status_code == 400
    roles = {m["user"]["id"]: m["role"] for m in cadmin.get(f"/api/orgs/{pool}").json["members"]}
    assert roles == {world["coord"]: "coordinator", world["gyn"]: "member", world["gyn2"]: "member",
                     doc: "coordinator"}
    assert cadmin.delete(f"/api/orgs/{pool}/members/{doc}").status_code == 204
    assert cadmin.delete(f"/api/orgs/{pool}/members/{doc}").status_code == 404
    assert api_as(doc).get(f"/api/orgs/{pool}").status_code == 404  # no longer a member: gone at once
    # A department's members work at its institution.
    dept = api_as(world["admin"]).post("/api/orgs", json={"kind": "department", "name": "妇科",
                                                          "institution_id": world["tertiary"]}).json["id"]
    assert api_as(world["admin"]).post(f"/api/orgs/{dept}/members", json={"user_id": world["gp"]}).status_code == 400
    assert api_as(world["admin"]).post(f"/api/orgs/{dept}/members", json={"user_id": world["gyn"]}).status_code == 201


def test_rules(world, api_as, make_user):
    c, cadmin = world["consortium"], api_as(world["cadmin"])
    lone = api_as(world["admin"]).post("/api/orgs", json={"kind": "doctor_group", "name": "外部组"}).json["id"]
    specialist = make_user(specialty="pathology")
    assert cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 2, "specialty": "pathology",
                                                     "target_user_id": specialist}).status_code == 409
    assert cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 3, "specialty": "pathology",
                                                     "target_org_id": lone}).status_code == 400  # not under it
    assert cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 3, "specialty": "pathology"}).status_code == 400
    assert cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 3, "specialty": "alchemy",
                                                     "target_user_id": specialist}).status_code == 400
    assert api_as(world["coord"]).post(f"/api/orgs/{c}/rules", json={
        "priority": 3, "target_user_id": specialist}).status_code == 403
    r = cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 3, "specialty": "pathology", "urgency": "urgent",
                                                  "target_user_id": specialist})
    assert r.status_code == 201, r.json
    r2 = cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 1, "fallback": True, "target_org_id": world["pool"]})
    assert r2.status_code == 201
    listed = api_as(world["gp"]).get(f"/api/orgs/{c}/rules").json["items"]
    assert [(x["priority"], x["fallback"]) for x in listed] == [(2, False), (3, False), (1, True)]
    assert listed[1]["target_user"]["id"] == specialist
    assert listed[0]["target_org"]["name"] == "妇科会诊组"
    assert cadmin.delete(f"/api/orgs/{c}/rules/{r.json['id']}").status_code == 204
    assert cadmin.delete(f"/api/orgs/{c}/rules/{r.json['id']}").status_code == 404
    assert api_as(world["outsider"]).get(f"/api/orgs/{c}/rules").status_code == 404
    assert cadmin.post(f"/api/orgs/{world['pool']}/rules", json={"priority": 1, "target_user_id": specialist}
                       ).status_code == 400  # rules belong to a consortium


def test_away_switch(api_as, world):
    gyn = api_as(world["gyn"])
    assert gyn.get("/api/me/away").json == {"away_until": None, "note": ""}
    r = gyn.put("/api/me/away", json={"until": "2099-01-02T08:00:00+08:00", "note": "休假"})
    assert r.status_code == 200
    assert r.json == {"away_until": "2099-01-02T00:00:00.000Z", "note": "休假"}
    assert gyn.put("/api/me/away", json={"until": None}).json["away_until"] is None
    assert gyn.put("/api/me/away", json={"until": "someday"}).status_code == 400


@pytest.mark.parametrize("until", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+05:00", "9999-12-31T23:59:59",
                                   "0001-01-01T00:00:00"])
def test_away_until_the_calendars_ends_is_a_400_naming_the_field(api_as, world, until):
    # In UTC the first two fall outside the calendar (an OverflowError, a 500, before the fix).
    gyn = api_as(world["gyn"])
    r = gyn.put("/api/me/away", json={"until": until, "note": "休假"})
    assert r.status_code == 400, r.json
    assert r.json["detail"][0]["field"] == "until"
    assert gyn.get("/api/me/away").json == {"away_until": None, "note": ""}
