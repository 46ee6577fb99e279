"""Server-rendered pages: inbox sections, the new-case form, case access, languages, CSRF by header."""

import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from app.web.i18n import SOURCE_DIR
from tests.imaging.dicom_samples import sample, upload
from tests.web.conftest import page_csrf


@pytest.fixture
def team(make_user, api_as, make_case):
    gp, gyn = make_user(name="李春梅"), make_user(specialty="gynecology", name="王静怡")
    rad, outsider = make_user(specialty="radiology", name="陈志远"), make_user(name="孙浩")
    return {"gp": gp, "gyn": gyn, "rad": rad, "outsider": outsider}


def test_inbox_sorts_cases_into_what_awaits_each_doctor(client, login, team, api_as, make_case):
    waiting = make_case(team["gp"], title="待接诊的病例")
    asked = make_case(team["gp"], title="专家提了问题的病例")
    draft = make_case(team["gp"], title="草稿病例")
    gp, gyn = api_as(team["gp"]), api_as(team["gyn"])
    for case_id in (waiting, asked):
        assert gp.post(f"/api/cases/{case_id}/share", json={"specialist_id": team["gyn"]}).status_code == 200
    gyn.post(f"/api/cases/{asked}/accept")
    gyn.post(f"/api/cases/{asked}/questions", json={"question": "有无腹水？"})
    gyn.post(f"/api/cases/{asked}/participants", json={"user_id": team["rad"], "discipline": "radiology"})

    def section(html, name):
        m = re.search(rf'id="section-{name}">(.*?)</section>', html, re.S)
        return m.group(1) if m else ""

    login(team["gyn"])
    html = client.get("/").get_data(as_text=True)
    assert f'data-case-id="{waiting}"' in section(html, "awaiting_decision")
    assert f'data-case-id="{asked}"' in section(html, "consulting")
    assert f'data-case-id="{draft}"' not in html  # a draft is the owner's alone

    client.post("/logout", data={"csrf_token": page_csrf(client, "/")})
    login(team["gp"])
    html = client.get("/").get_data(as_text=True)
    assert f'data-case-id="{asked}"' in section(html, "questions")
    assert f'data-case-id="{draft}"' in section(html, "my_cases")
    assert "专家提了问题的病例" in html
    only_drafts = client.get("/?status=draft").get_data(as_text=True)
    assert f'data-case-id="{draft}"' in only_drafts
    assert f'data-case-id="{waiting}"' not in only_drafts

    client.post("/logout", data={"csrf_token": page_csrf(client, "/")})
    login(team["rad"])
    assert f'data-case-id="{asked}"' in section(client.get("/").get_data(as_text=True), "invited")


def test_new_case_form_creates_a_draft_or_names_the_missing_field(client, login, team, api_as):
    token = login(team["gp"])
    r = client.post("/cases/new", data={"csrf_token": token, "title": "", "clinical_question": "问题", "age": "200"})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert html.count('class="field-error"') == 2  # the title and the age
    assert 'value="200"' in html  # what was typed is kept
    assert api_as(team["gp"]).get("/api/cases").json["items"] == []

    r = client.post("/cases/new", data={"csrf_token": token, "title": "盆腔包块", "clinical_question": "良恶性？",
                                        "age": "46", "sex": "female", "specialty": "gynecology"})
    assert r.status_code == 302
    case_id = int(re.search(r"/cases/(\d+)#upload", r.headers["Location"]).group(1))
    case = api_as(team["gp"]).get(f"/api/cases/{case_id}").json
    assert (case["status"], case["patient"], case["specialty"]) == ("draft", {"age": 46, "sex": "female"}, "gynecology")
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="upload"' in page
    assert 'id="share"' in page
    assert 'id="accept-btn"' not in page


def test_case_and_viewer_pages_follow_the_api_permissions(client, login, team, api_as, make_case):
    case_id = make_case(team["gp"])
    api_as(team["gp"]).post(f"/api/cases/{case_id}/share", json={"specialist_id": team["gyn"]})
    login(team["outsider"])
    for path in (f"/cases/{case_id}", f"/cases/{case_id}/viewer", "/cases/999999"):
        r = client.get(path)
        assert r.status_code == 404
        assert "页面不存在" in r.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": page_csrf(client, "/")})
    login(team["gyn"])
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="accept-btn"' in page
    assert 'id="upload"' in page
    assert 'id="share"' not in page
    audit = api_as(team["gp"]).get(f"/api/cases/{case_id}/audit").json["items"]
    denied = [a for a in audit if a["action"] == "page.case" and a["user_id"] == team["outsider"]]
    assert denied
    assert denied[0]["detail"]["error"] == "case not found"


def test_session_upload_with_the_csrf_header_streams_into_the_case(client, login, team, api_as, make_case):
    case_id = make_case(team["gp"])
    token = login(team["gp"])
    files = {"files": upload([sample("CT_small.dcm")])}
    assert client.post(f"/api/cases/{case_id}/files", data=files).status_code == 400  # no token
    r = client.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                    headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400
    assert r.json["error"] == "csrf token missing or invalid"
    r = client.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 200, r.json
    assert [a["kind"] for a in r.json["accepted"]] == ["dicom"]


def test_language_switch_and_complete_english_catalogue(client, login, team, make_case):
    case_id = make_case(team["gp"])
    login(team["gp"])
    assert "临床问题" in client.get(f"/cases/{case_id}").get_data(as_text=True)
    r = client.get(f"/lang/en?next=/cases/{case_id}")
    assert r.headers["Location"] == f"/cases/{case_id}"
    html = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Clinical question" in html
    assert 'lang="en"' in html
    assert "临床问题" not in html
    assert client.get("/lang/xx").status_code == 404
    assert client.get("/lang/zh?next=https://evil.example/").headers["Location"] == "/"

    # Every string the pages and scripts use has an English translation.
    extracted = {msg[2] for msg in extract_from_dir(str(SOURCE_DIR.parent), method_map=[
        ("**.py", "python"), ("**/templates/**.html", "jinja2")], keywords={"_": None, "_l": None, "gettext": None})}
    with (SOURCE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalogue = {m.id: m.string for m in read_po(f) if m.id}
    untranslated = sorted(m for m in extracted if isinstance(m, str) and not catalogue.get(m))
    assert untranslated == []


def test_front_end_packages_are_served_from_npm_not_a_cdn(client, login, team, make_case):
    with client.get("/vendor/socket.io.esm.min.js") as r:  # a file response: close it
        assert r.status_code == 200
        assert b"export" in r.data
    assert client.get("/vendor/../package.json").status_code == 404
    assert client.get("/vendor/lodash.js").status_code == 404
    case_id = make_case(team["gp"])
    login(team["gp"])
    for path in ("/", f"/cases/{case_id}", "/cases/new"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r'(src|href)="(https?:)?//', html), path
