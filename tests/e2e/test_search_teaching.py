"""The case library in a real browser on a 360-px phone: the gp searches the inbox with Chinese words
and a filter and finds the expected case first; a pool member opens a published teaching case's
images in the read-only viewer (an image drawn, no chat)."""

import re

import pytest
from playwright.sync_api import expect

from tests.imaging.dicom_samples import sample, upload

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def library(api_as, demo):
    """Three cases of the gp's (two gynecology, one radiology, all about an ovarian cyst); the first,
    with a CT, consulted by gyn, closed, proposed to gyn's pool and consented to by the gp."""
    gp, gyn = api_as(demo["gp"]), api_as(demo["gyn"])
    ids = {}
    for key, title, question, specialty in (
            ("expected", "左侧卵巢囊肿伴实性成分", "请会诊：良性还是恶性？", "gynecology"),
            ("weaker", "盆腔包块", "超声提示卵巢囊肿，是否需要手术？", "gynecology"),
            ("filtered_out", "右侧卵巢囊肿", "请协助明确诊断", "radiology")):
        r = gp.post("/api/cases", json={"title": title, "clinical_question": question, "specialty": specialty})
        assert r.status_code == 201, r.json
        ids[key] = r.json["id"]
    case_id = ids["expected"]
    r = gp.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                content_type="multipart/form-data")
    assert r.json["accepted"], r.json
    for api, path, body in (
            (gp, "share", {"specialist_id": demo["gyn"]}), (gyn, "accept", None),
            (gyn, "opinion", {"diagnosis": "卵巢交界性肿瘤可能", "recommendations": "腹腔镜手术，术中冰冻"}),
            (gp, "close", {"rating": 5})):
        r = api.post(f"/api/cases/{case_id}/{path}", json=body)
        assert r.status_code == 200, (path, r.json)
    pool = next(o["id"] for o in gyn.get("/api/orgs").json["items"] if o["name"] == "妇科会诊组")
    r = gyn.post(f"/api/cases/{case_id}/teaching", json={
        "org_id": pool, "note": "交界性肿瘤的影像特点：实性成分与血流",
        "tags": {"specialty": "gynecology", "keywords": ["交界性肿瘤"], "difficulty": "advanced"}})
    assert r.status_code == 201, r.json
    ids["teaching"] = r.json["id"]
    r = gp.post(f"/api/teaching/{ids['teaching']}/consent", json={"agree": True})
    assert r.status_code == 200, r.json
    assert r.json["state"] == "published"
    return ids


def test_phone_search_then_teaching_images_read_only(open_as, library):
    errors: list[str] = []

    def opened(who: str):
        page = open_as(who, phone=True)
        page.on("pageerror", lambda exc: errors.append(f"[{who}] {exc}"))
        return page

    # --- gp, on a phone: the inbox search box, the words and the specialty filter ---
    gp = opened("gp")
    gp.fill("#search-q", "卵巢囊肿")
    gp.click("form[role=search] summary")
    gp.select_option("form[role=search] select[name=specialty]", "gynecology")
    gp.click("form[role=search] button[type=submit]")
    rows = gp.locator("#search-results .case-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-case-id", str(library["expected"]))
    expect(rows.first).to_contain_text("左侧卵巢囊肿伴实性成分")
    expect(gp.locator(f"#search-results [data-case-id='{library['filtered_out']}']")).to_have_count(0)
    assert gp.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone

    # --- gyn2, a member of the pool: the collection, the teaching case, its images read-only ---
    gyn2 = opened("gyn2")
    gyn2.goto("/teaching")
    gyn2.fill("#teaching-q", "交界性")
    gyn2.click("form[role=search] button[type=submit]")
    item = gyn2.locator(f"#teaching-list [data-teaching-id='{library['teaching']}']")
    expect(item).to_have_count(1)
    item.locator("a").click()
    gyn2.click("#teaching-images")
    gyn2.wait_for_url(re.compile(rf"/teaching/{library['teaching']}/viewer"))
    expect(gyn2.locator("#stage")).to_have_attribute("data-drawn", re.compile(r"^\d+:full$"), timeout=30_000)
    width = gyn2.evaluate("document.getElementById('canvas').width")
    assert width > 0
    expect(gyn2.locator("#room")).to_have_count(0)
    expect(gyn2.locator("#chat-form")).to_have_count(0)
    assert errors == []
