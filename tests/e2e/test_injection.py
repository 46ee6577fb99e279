"""Script and selector-breaking text in every place a page shows user text: shown as text, never run.

Stored through the real API: case title, question and summary, share message, decline reason (the
timeline), chat messages, annotation text, a participant's and an organisation's name, uploaded
filenames. Each page (inbox, case page, viewer with its room, organisation page) must show the
text literally, run none of it, raise no script error and keep working.
"""

import io

from playwright.sync_api import expect

from tests.imaging.dicom_samples import sample
from tests.imaging.documents import report_pdf

EVIL = '<img src=x onerror=window.__pwned=1>x"]</script><script>window.__pwned=2</script>{{7*7}}'
EVIL_FILE = '<img src=x onerror=window.__pwned=3>x"]{{7*7}}'  # no "/": a filename keeps its last part
PDF = report_pdf()


def check(page, errors: list[str]) -> None:
    """Nothing of the stored text ran; it shows as text; no script error on the page."""
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__pwned") is None
    # Our pages have no inline script (only JSON data blocks); none was smuggled in.
    assert page.locator('script:not([src]):not([type="application/json"])').count() == 0
    assert "{{7*7}}" in page.inner_text("body")  # shown literally, not evaluated as a template
    assert errors == []


def test_hostile_text_everywhere_is_shown_not_run(app, open_as, demo, api_as, make_user, tmp_path):
    gp, gyn = api_as(demo["gp"]), api_as(demo["gyn"])
    hostile_user = make_user(name=EVIL, specialty="radiology")
    r = gp.post("/api/cases", json={"title": EVIL, "clinical_question": EVIL, "summary": EVIL})
    assert r.status_code == 201, r.json
    case_id = r.json["id"]
    r = gp.post(f"/api/cases/{case_id}/files", content_type="multipart/form-data", data={"files": [
        (io.BytesIO(sample("MR_small.dcm").read_bytes()), EVIL_FILE + ".dcm"),
        (io.BytesIO(PDF), EVIL_FILE + ".pdf")]})
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 2, r.json
    sop = next(a["sop_instance_uid"] for a in r.json["accepted"] if a["kind"] == "dicom")
    pdf_name = next(a["filename"] for a in r.json["accepted"] if a["kind"] != "dicom")
    r = gp.post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"], "message": EVIL})
    assert r.status_code == 200, r.json
    assert gyn.post(f"/api/cases/{case_id}/accept").status_code == 200
    r = gyn.post(f"/api/cases/{case_id}/participants", json={"user_id": hostile_user, "discipline": "radiology"})
    assert r.status_code == 201, r.json
    assert gyn.post(f"/api/cases/{case_id}/messages", json={"body": EVIL, "client_id": "c1"}).status_code == 201
    r = gyn.post(f"/api/cases/{case_id}/annotations", json={
        "case_id": case_id, "sop_instance_uid": sop, "kind": "text", "points": [[10, 10]], "text": EVIL})
    assert r.status_code == 201, r.json

    # A second case, declined with a hostile reason (the owner sees it on the inbox and the case page).
    declined = gp.post("/api/cases", json={"title": EVIL, "clinical_question": EVIL}).json["id"]
    gp.post(f"/api/cases/{declined}/share", json={"specialist_id": demo["gyn"], "message": EVIL})
    assert gyn.post(f"/api/cases/{declined}/decline", json={"reason": EVIL}).status_code == 200

    # An organisation with a hostile name, the owner its admin.
    admin = api_as(demo["admin"])
    r = admin.post("/api/orgs", json={"kind": "doctor_group", "name": EVIL})
    assert r.status_code == 201, r.json
    org_id = r.json["id"]
    assert admin.post(f"/api/orgs/{org_id}/members", json={"user_id": demo["gp"], "role": "admin"}).status_code == 201

    pages = {}
    for who in ("gp", "gyn"):
        page = open_as(who)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        pages[who] = (page, errors)

    page, errors = pages["gp"]
    for path in ("/", f"/cases/{case_id}", f"/cases/{declined}", f"/orgs/{org_id}"):
        page.goto(path)
        check(page, errors)
    page.goto(f"/cases/{case_id}")
    body = page.inner_text("body")
    assert pdf_name.startswith("<img src=x")
    assert pdf_name in body  # the (cleaned) filename, as text
    assert EVIL in body

    # The viewer and its room, for both sides: the room still works (presence, chat, annotations).
    for who in ("gp", "gyn"):
        page, errors = pages[who]
        page.goto(f"/cases/{case_id}/viewer")
        expect(page.locator("#conn-state")).to_have_class("ok")
    for who in ("gp", "gyn"):
        page, errors = pages[who]
        expect(page.locator("#online li")).to_have_count(2)
        expect(page.locator("#messages li[data-seq] .body")).to_have_text([EVIL])
        check(page, errors)
    page, errors = pages["gp"]
    page.fill("#chat-input", EVIL)
    page.keyboard.press("Enter")
    expect(pages["gyn"][0].locator("#messages li[data-seq] .body")).to_have_text([EVIL, EVIL])
    for page, errors in pages.values():
        check(page, errors)
