"""A peer-review disagreement becomes a teaching case in a real browser on a 360-px phone: the blind
reviewer proposes it from the teaching page, the referring doctor agrees with one tap, and the
reviewed author reads the review's note beside their opinion, without the reviewer's name."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(240)

NOTE = "囊实性包块伴血流信号，应先考虑交界性肿瘤，不宜仅随访"


@pytest.fixture
def reviewed(api_as, demo):
    """A gp case consulted by gyn and closed, reviewed blind by gyn2 (a major disagreement)."""
    gp, gyn = api_as(demo["gp"]), api_as(demo["gyn"])
    r = gp.post("/api/cases", json={"title": "右侧附件区包块", "clinical_question": "良性还是恶性？",
                                    "specialty": "gynecology"})
    assert r.status_code == 201, r.json
    case_id = r.json["id"]
    for api, path, body in ((gp, "share", {"specialist_id": demo["gyn"]}), (gyn, "accept", None),
                            (gyn, "opinion", {"diagnosis": "卵巢囊肿，良性可能", "recommendations": "三个月后复查"}),
                            (gp, "close", {"rating": 4})):
        r = api.post(f"/api/cases/{case_id}/{path}", json=body)
        assert r.status_code == 200, (path, r.json)
    r = api_as(demo["gyn2"]).post("/api/peer-reviews", json={"case_id": case_id, "score": "major",
                                                             "teaching_note": NOTE})
    assert r.status_code == 201, r.json
    return r.json["id"]


def test_reviewer_proposes_owner_consents_author_reads(open_as, reviewed):
    reviewer = open_as("gyn2", phone=True)
    errors = []
    reviewer.on("pageerror", lambda exc: errors.append(exc))
    reviewer.goto("/teaching")
    row = reviewer.locator(f'[data-review-id="{reviewed}"]')
    expect(row).to_contain_text(NOTE)
    expect(row).to_contain_text("重大分歧")
    expect(reviewer.locator("html")).to_have_attribute("data-actions", "ready")  # its forms are wired
    row.locator("select[name=org_id]").select_option(label="妇科会诊组")
    row.locator("select[name='tags.difficulty']").select_option("advanced")
    row.locator("textarea[name='tags.keywords']").fill("卵巢交界性肿瘤")
    row.get_by_role("button", name="提议为教学病例").click()
    expect(reviewer.locator(f'[data-review-id="{reviewed}"]')).to_contain_text("已提议 · 待同意")
    assert errors == []

    owner = open_as("gp", phone=True)
    owner.goto("/teaching")
    owner.locator("#teaching-pending a").first.click()
    expect(owner.locator("#teaching-review-note")).to_contain_text(NOTE)
    # The buttons are wired by teaching.js: a click before it has run does nothing.
    expect(owner.locator("html")).to_have_attribute("data-teaching", "ready")
    owner.get_by_role("button", name="同意").click()
    expect(owner.locator("#teaching-consent")).to_have_count(0)

    author = open_as("gyn", phone=True)
    author.goto("/teaching?q=同行评议分歧")
    author.locator("#teaching-list a").first.click()
    expect(author.locator(".teaching-pair #teaching-opinion")).to_contain_text("卵巢囊肿，良性可能")
    expect(author.locator(".teaching-pair #teaching-review-note")).to_contain_text(NOTE)
    expect(author.locator('[data-disagreement="major"]')).to_be_visible()
    assert "周敏" not in author.locator("main").inner_text()
