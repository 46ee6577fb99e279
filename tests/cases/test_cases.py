"""Cases: creating, listing, and who can see a case and its files."""

import pytest

from tests.imaging.dicom_samples import sample, upload


def test_create_case_with_patient_and_urgency(api_as, make_user):
    owner = make_user()
    r = api_as(owner).post("/api/cases", json={
        "title": "宫颈病变", "clinical_question": "是否需要锥切？", "summary": "HPV16+",
        "patient": {"age": 38, "sex": "F"}, "urgency": "urgent", "specialty": "gynecology"})
    assert r.status_code == 201
    case = r.json
    assert case["status"] == "draft"
    assert case["owner"]["id"] == owner
    assert case["consultant"] is None
    assert case["patient"] == {"age": 38, "sex": "female"}
    assert case["urgency"] == "urgent"
    assert case["specialty"] == "gynecology"
    assert case["studies"] == []
    assert case["attachments"] == []
    assert case["participants"] == []
    assert case["opinion"] is None
    assert case["created_at"].endswith("Z")


@pytest.mark.parametrize(("body", "field"), [
    ({"clinical_question": "q"}, "title"),
    ({"title": "t"}, "clinical_question"),
    ({"title": "", "clinical_question": "q"}, "title"),
    ({"title": "t", "clinical_question": "q", "patient": {"age": 200}}, "patient.age"),
    ({"title": "t", "clinical_question": "q", "urgency": "whenever"}, "urgency"),
    ({"title": "t", "clinical_question": "q", "specialty": "astrology"}, "specialty"),
])
def test_create_case_names_the_bad_field(api_as, make_user, body, field):
    r = api_as(make_user()).post("/api/cases", json=body)
    assert r.status_code == 400
    assert field in r.json["error"]
    assert any(d["field"] == field for d in r.json["detail"])


def test_list_shows_only_my_cases(api_as, make_user, make_case):
    me, other = make_user(), make_user()
    mine = make_case(me)
    make_case(other)
    assert [c["id"] for c in api_as(me).get("/api/cases").json["items"]] == [mine]


def test_a_draft_is_invisible_to_everyone_but_its_owner(api_as, make_user, make_case):
    owner, outsider, admin = make_user(), make_user(), make_user(role="admin")
    case_id = make_case(owner)
    api_as(owner).post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                       content_type="multipart/form-data")
    sop = api_as(owner).get(f"/api/cases/{case_id}/instances").json["items"][0]["sop_instance_uid"]
    for who in (outsider, admin):
        api = api_as(who)
        for path in (f"/api/cases/{case_id}", f"/api/cases/{case_id}/instances",
                     f"/api/cases/{case_id}/instances/{sop}/file",
                     f"/api/cases/{case_id}/instances/{sop}/rendered"):
            r = api.get(path)
            assert r.status_code == 404, path
            assert r.json == {"error": "case not found"}
        r = api.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("MR_small.dcm")])},
                     content_type="multipart/form-data")
        assert r.status_code == 404
    # A case that does not exist answers exactly the same.
    assert api_as(outsider).get("/api/cases/999999").json == {"error": "case not found"}
    assert len(api_as(owner).get(f"/api/cases/{case_id}/instances").json["items"]) == 1


def test_case_routes_need_credentials(client):
    assert client.get("/api/cases").status_code == 401
    assert client.post("/api/cases", json={}).status_code == 401
    assert client.get("/api/cases/1/instances").status_code == 401
