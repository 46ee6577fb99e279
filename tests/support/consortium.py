"""A consortium world built through the API: a provider and a requester hospital, a gynecology
pool with a coordinator and two gynecologists, and a rule sending gynecology to that pool."""

import pytest


@pytest.fixture
def world(make_user, make_institution, api_as):
    """Return ids and helpers of a small consortium, made by a platform admin through the API."""
    tertiary, county, community = (make_institution(level=lvl) for lvl in ("tertiary", "county", "community"))
    ids = {
        "admin": make_user(role="admin"),
        "cadmin": make_user(institution_id=tertiary),
        "coord": make_user(institution_id=tertiary),
        "gyn": make_user(specialty="gynecology", institution_id=tertiary),
        "gyn2": make_user(specialty="gynecology", institution_id=tertiary),
        "gp": make_user(institution_id=county),
        "outsider": make_user(institution_id=community),
        "tertiary": tertiary, "county": county, "community": community,
    }
    admin = api_as(ids["admin"])
    r = admin.post("/api/orgs", json={"kind": "consortium", "name": "湘江妇儿医联体"})
    assert r.status_code == 201, r.json
    ids["consortium"] = r.json["id"]
    c = ids["consortium"]
    assert admin.post(f"/api/orgs/{c}/members", json={"user_id": ids["cadmin"], "role": "admin"}).status_code == 201
    cadmin = api_as(ids["cadmin"])
    for inst, side in ((tertiary, "provider"), (county, "requester")):
        r = cadmin.post(f"/api/orgs/{c}/institutions", json={"institution_id": inst, "side": side})
        assert r.status_code == 201, r.json
    r = cadmin.post("/api/orgs", json={"kind": "doctor_group", "name": "妇科会诊组", "parent_id": c})
    assert r.status_code == 201, r.json
    ids["pool"] = r.json["id"]
    for who, role in (("coord", "coordinator"), ("gyn", "member"), ("gyn2", "member")):
        r = cadmin.post(f"/api/orgs/{ids['pool']}/members", json={"user_id": ids[who], "role": role})
        assert r.status_code == 201, r.json
    r = cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 2, "specialty": "gynecology",
                                                  "target_org_id": ids["pool"]})
    assert r.status_code == 201, r.json
    ids["rule"] = r.json["id"]
    return ids


@pytest.fixture
def pooled_case(world, make_case, api_as):
    """Return a gynecology case the gp shared to the consortium (waiting in the pool's queue)."""
    case_id = make_case(world["gp"], specialty="gynecology", urgency="urgent")
    r = api_as(world["gp"]).post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"],
                                                                      "message": "请分诊"})
    assert r.status_code == 200, r.json
    return case_id
