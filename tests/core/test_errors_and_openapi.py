"""Central error handling and the OpenAPI document."""

import io
import re

import pytest
from openapi_spec_validator import validate

from tests.imaging.documents import report_pdf


def test_unknown_api_route_is_json_404(client):
    r = client.get("/api/no-such-thing")
    assert r.status_code == 404
    assert r.json == {"error": "not found"}


def test_unknown_api_route_with_post_is_json_404_not_csrf(client):
    r = client.post("/api/no-such-thing", json={})
    assert r.status_code == 404
    assert r.json["error"] == "not found"


def test_wrong_method_is_json_405(client):
    r = client.put("/api/me")
    assert r.status_code == 405
    assert r.json["error"] == "method not allowed"


def test_unknown_page_is_html_404(client):
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    assert "页面不存在" in r.get_data(as_text=True)


def test_upload_over_the_limit_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    r = client.post("/api/auth/token", data=b"x" * 4096, content_type="application/json")
    assert r.status_code == 413
    assert r.json["error"] == "request entity too large"
    assert "MB" in r.json["detail"]


def test_unexpected_error_is_500_json_without_details(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/api/_boom")
    def boom():
        raise RuntimeError("patient 张三 secret")

    r = client.get("/api/_boom")
    assert r.status_code == 500
    assert r.json == {"error": "internal server error"}


def test_openapi_document_is_valid_and_lists_every_api_route(app, client):
    spec = client.get("/api/openapi.json").json
    validate(spec)
    api_rules = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith(("/api/", "/dicomweb/"))}
    documented = set(spec["paths"])
    as_openapi = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r) for r in api_rules}
    assert as_openapi == documented
    assert spec["paths"]["/api/auth/token"]["post"]["requestBody"]


@pytest.mark.parametrize("path", ["/api/me", "/api/specialists"])
def test_openapi_marks_routes_that_need_a_token(client, path):
    spec = client.get("/api/openapi.json").json
    assert spec["paths"][path]["get"]["security"] == [{"bearer": []}]


def test_openapi_describes_bodies_queries_answers_and_the_error_shape(client):
    spec = client.get("/api/openapi.json").json
    messages = spec["paths"]["/api/cases/{case_id}/messages"]
    assert [p["name"] for p in messages["get"]["parameters"] if p["in"] == "query"] == ["since"]
    assert messages["post"]["requestBody"]["content"]["application/json"]["schema"]
    listed = messages["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["properties"]["items"]["items"]["required"][:2] == ["case_id", "seq"]
    me = spec["paths"]["/api/me"]["get"]["responses"]
    assert "email" in me["200"]["content"]["application/json"]["schema"]["required"]
    error = {"$ref": "#/components/schemas/Error"}
    assert me["4XX"]["content"]["application/json"]["schema"] == error
    rendered = spec["paths"]["/api/cases/{case_id}/instances/{sop}/rendered"]["get"]
    assert {p["name"] for p in rendered["parameters"] if p["in"] == "query"} == {"frame", "wc", "ww", "size", "format"}


def test_case_list_and_detail_answers_match_their_documented_schemas(client, api_as, make_case_in_progress):
    """The documented answers are the real ones: a case with a team, a report and files validates."""
    from jsonschema import Draft202012Validator

    spec = client.get("/api/openapi.json").json
    case_id, ids = make_case_in_progress(users={"radiologist": {"specialty": "radiology"}},
                                         participants={"radiologist": "radiology"}, specialty="gynecology")
    consultant = api_as(ids["consultant"])
    r = api_as(ids["radiologist"]).post(f"/api/cases/{case_id}/reports",
                                        json={"body": "左附件区囊实性包块", "discipline": "radiology"})
    assert r.status_code == 201, r.json
    r = consultant.post(f"/api/cases/{case_id}/files", data={"files": [
        (io.BytesIO(report_pdf()), "labs.pdf")]},
        content_type="multipart/form-data")
    assert r.status_code == 200, r.json

    def check(path: str, answer: dict) -> None:
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(answer)]
        assert errors == []

    detail = consultant.get(f"/api/cases/{case_id}").json
    assert all(detail[k] for k in ("participants", "reports", "attachments"))
    check("/api/cases/{case_id}", detail)
    listed = consultant.get("/api/cases").json
    assert [c["id"] for c in listed["items"]] == [case_id]
    check("/api/cases", listed)
    # A schema that is wrong about a field fails: the check is not vacuous.
    schema = spec["paths"]["/api/cases"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert list(Draft202012Validator(schema).iter_errors({**listed, "total": "many"}))
