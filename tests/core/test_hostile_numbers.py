"""Numbers from outside: NaN/Infinity and ids past the database's range are a 4xx, never a 500."""

import json

import pytest

from tests.imaging.dicom_samples import sample, upload

HUGE = (2**31, 2**63, 2**64, 10**30)


@pytest.fixture
def world(make_case_in_progress, api_as):
    case_id, ids = make_case_in_progress(users={"radiology": {"specialty": "radiology"}})
    return case_id, ids, api_as(ids["consultant"])


@pytest.mark.parametrize("n", HUGE)
def test_ids_past_the_database_range_in_paths_are_404(world, n):
    case_id, _, api = world
    for method, path in (("get", f"/api/cases/{n}"), ("get", f"/api/cases/{n}/messages"),
                         ("post", f"/api/cases/{n}/accept"), ("delete", f"/api/cases/{case_id}/participants/{n}"),
                         ("delete", f"/api/cases/{case_id}/annotations/{n}"), ("get", f"/api/specialists/{n}")):
        r = getattr(api, method)(path)
        assert r.status_code == 404, (method, path, r.status_code, r.data[:200])


@pytest.mark.parametrize("n", HUGE)
def test_ids_past_the_database_range_in_queries_and_bodies_are_400(world, n):
    case_id, ids, api = world
    assert api.get(f"/api/cases/{case_id}/messages?since={n}").status_code == 400
    assert api.get(f"/api/specialists?case_id={n}").status_code == 400
    r = api.post(f"/api/cases/{case_id}/participants", json={"user_id": n, "discipline": "radiology"})
    assert r.status_code == 400, r.json
    assert r.json["detail"][0]["field"] == "user_id"
    r = api.post(f"/api/cases/{case_id}/messages", json={"body": "x", "client_id": "c1", "image_ref": {"frame": n}})
    assert r.status_code == 400, r.json
    assert api.get(f"/api/cases/{case_id}/messages").json["items"] == []


def test_a_superscript_digit_or_a_fraction_is_not_an_id(world):
    case_id, _, api = world
    assert api.get(f"/api/cases/{case_id}/messages?since=²").status_code == 400
    assert api.get(f"/api/cases/{case_id}/messages?since=1.5").status_code == 400
    r = api.post(f"/api/cases/{case_id}/participants", json={"user_id": 1.5, "discipline": "radiology"})
    assert r.status_code == 400


def test_json_bodies_with_nan_or_infinity_literals_are_400(api):
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"title": "t", "clinical_question": "q", "note": {literal}}}'
        r = api.post("/api/cases", data=raw, content_type="application/json")
        assert r.status_code == 400, (literal, r.status_code, r.json)
    assert api.get("/api/cases").json["items"] == []


def test_non_finite_annotation_points_over_http_are_400_and_the_list_stays_json(world, api_as):
    case_id, ids, api = world
    owner = api_as(ids["owner"])
    r = owner.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                   content_type="multipart/form-data")
    sop = r.json["accepted"][0]["sop_instance_uid"]
    for points in ("[[NaN, 0], [1, Infinity]]", "[[1e999, 0], [1, 2]]"):
        raw = f'{{"sop_instance_uid": "{sop}", "kind": "line", "points": {points}}}'
        r = api.post(f"/api/cases/{case_id}/annotations", data=raw, content_type="application/json")
        assert r.status_code == 400, (points, r.status_code, r.data[:200])
    r = api.get(f"/api/cases/{case_id}/annotations")
    assert r.status_code == 200
    assert json.loads(r.data, parse_constant=lambda c: pytest.fail(f"{c} in the answer")) == {"items": []}


def test_true_or_false_is_not_an_id(world, make_case, make_user, api_as):
    # pydantic's lax mode read true as 1: a buggy client's {"specialist_id": true} shared the case with user 1.
    case_id, _, api = world
    r = api.post(f"/api/cases/{case_id}/participants", json={"user_id": True, "discipline": "radiology"})
    assert r.status_code == 400, r.json
    assert r.json["detail"][0]["field"] == "user_id"
    owner = make_user()
    draft = make_case(owner)
    r = api_as(owner).post(f"/api/cases/{draft}/share", json={"specialist_id": True})
    assert r.status_code == 400, r.json
    assert r.json["detail"][0]["field"] == "specialist_id"
    assert api_as(owner).get(f"/api/cases/{draft}").json["status"] == "draft"


def test_a_yes_no_field_of_a_body_takes_only_true_or_false_a_query_flag_stays_lax(world, api_as, make_user):
    # pydantic's lax mode read "no", "off" and 0 as false and "yes", 1 as true in JSON bodies.
    # {"name_peers_ok": "yes"} named the org to its peers on every dashboard.
    _, _, api = world
    admin = api_as(make_user(role="admin"))
    for value in ("yes", 1, "off"):
        r = admin.post("/api/orgs", json={"kind": "doctor_group", "name": "影像会诊组", "name_peers_ok": value})
        assert r.status_code == 400, (value, r.json)
        assert r.json["detail"] == [{"field": "name_peers_ok", "message": "Value error, must be true or false"}]
    assert admin.get("/api/orgs").json["items"] == []
    r = admin.post("/api/orgs", json={"kind": "doctor_group", "name": "影像会诊组", "name_peers_ok": True})
    assert r.status_code == 201, r.json
    assert admin.get(f"/api/orgs/{r.json['id']}").json["name_peers_ok"] is True
    for flag in ("1", "true", "yes"):
        assert api.get(f"/api/cases?waiting_for_me={flag}").status_code == 200, flag
    assert api.get("/api/cases?waiting_for_me=maybe").status_code == 400
