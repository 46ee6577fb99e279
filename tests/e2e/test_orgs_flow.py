"""The pool path in a real browser: the gp shares to the demo consortium, the coordinator triages on a
phone, gyn declines, the case is back in the queue, gyn2 accepts; the gp sees the routing trail, and
a coordinator of another pool and an outsider get 404."""

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.imaging.dicom_samples import sample

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def consortium(app, demo):
    """The demo consortium's and pool's ids, and a second pool (产科会诊组) coordinated by oncology@."""
    from app.extensions import db
    from app.orgs.models import Org, OrgMember

    with app.app_context():
        ids = dict(db.session.execute(sa.select(Org.name, Org.id)).all())
        other = Org(kind="doctor_group", name="产科会诊组", parent_id=ids["湘江妇儿医联体"])
        db.session.add(other)
        db.session.flush()
        db.session.add(OrgMember(org_id=other.id, user_id=demo["oncology"], role="coordinator"))
        db.session.commit()
        return {"consortium": ids["湘江妇儿医联体"], "pool": ids["妇科会诊组"], "other_pool": other.id}


def test_share_to_consortium_triage_decline_reassign_accept(open_as, demo, consortium):
    errors: list[str] = []

    def opened(who: str, **kw):
        page = open_as(who, **kw)
        page.on("pageerror", lambda exc: errors.append(f"[{who}] {exc}"))
        return page

    # --- gp: a gynecology case with an image, shared to the consortium (not to a named specialist) ---
    gp = opened("gp")
    gp.goto("/cases/new")
    gp.fill("input[name=title]", "绝经后阴道流血")
    gp.fill("textarea[name=clinical_question]", "内膜增厚 8 mm，是否需要宫腔镜活检？")
    gp.select_option("select[name=specialty]", "gynecology")
    gp.select_option("select[name=urgency]", "urgent")
    gp.click("button[type=submit].primary")
    expect(gp.locator("#upload")).to_be_visible()
    case_id = int(re.search(r"/cases/(\d+)", gp.url).group(1))
    gp.set_input_files("#pick-files", str(sample("CT_small.dcm")))
    expect(gp.locator(".upload-item.accepted")).to_have_count(1, timeout=60_000)
    gp.reload()
    gp.click("#share-to-org")
    expect(gp.locator("#share-specialist")).to_be_hidden()
    option = gp.locator(f"#org-picker li[data-org-id='{consortium['consortium']}']")
    expect(option).to_contain_text("湘江妇儿医联体")
    option.locator("input[type=radio]").check()
    gp.fill("#share-form textarea[name=message]", "请分诊，谢谢")
    gp.click("#share-btn")
    expect(gp.locator(".case-head [data-status]")).to_have_attribute("data-status", "submitted")
    expect(gp.locator("#routing li[data-kind=routed]")).to_contain_text("妇科 → 妇科会诊组 by rule 1")

    # --- coordinator, on a phone: from the inbox to the queue, assign gyn from the suggestions ---
    coord = opened("coordinator", phone=True)
    coord.locator(f"#my-orgs li[data-org-id='{consortium['pool']}'] a.queue-link").click()
    item = coord.locator(f".queue-item[data-case-id='{case_id}']")
    expect(item).to_contain_text("内膜增厚 8 mm")
    expect(item.locator(".thumbs img")).to_have_count(1)
    # A lazy image: wait for it to arrive (checked at once, it was still loading in 1 run of a few).
    coord.wait_for_function("img => img.complete && img.naturalWidth > 0",
                            arg=item.locator(".thumbs img").element_handle())
    expect(item.locator(f"li.suggestion[data-user-id='{demo['gyn']}'] .reasons li").first).to_be_visible()
    expect(item.locator(f"li.suggestion[data-user-id='{demo['gyn2']}']")).to_be_visible()
    assert coord.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    screenshot(coord, "phone-queue")
    item.locator(f"li.suggestion[data-user-id='{demo['gyn']}'] .assign-btn").click()
    expect(coord.locator(f".queue-item[data-case-id='{case_id}']")).to_have_count(0)

    # --- gyn declines: the case goes back to the pool's queue ---
    gyn = opened("gyn")
    gyn.goto(f"/cases/{case_id}")
    gyn.fill("#decide input[name=reason]", "本周出差")
    with gyn.expect_response(lambda r: r.url.endswith(f"/api/cases/{case_id}/decline")) as declined:
        gyn.get_by_role("button", name="婉拒", exact=True).click()
    assert declined.value.status == 200
    coord.reload()
    item = coord.locator(f".queue-item[data-case-id='{case_id}']")
    expect(item).to_be_visible()
    item.locator(f"li.suggestion[data-user-id='{demo['gyn2']}'] .assign-btn").click()
    expect(coord.locator(f".queue-item[data-case-id='{case_id}']")).to_have_count(0)

    # --- gyn2 accepts ---
    gyn2 = opened("gyn2")
    gyn2.goto(f"/cases/{case_id}")
    gyn2.click("#accept-btn")
    expect(gyn2.locator(".case-head [data-status]")).to_have_attribute("data-status", "accepted")

    # --- the gp sees where the case went and why ---
    gp.reload()
    kinds = gp.locator("#routing li[data-kind]").evaluate_all("items => items.map(li => li.dataset.kind)")
    assert kinds == ["routed", "assigned", "returned", "assigned"]
    expect(gp.locator("#routing li[data-kind=returned]")).to_contain_text("本周出差")
    expect(gp.locator(".case-head [data-status]")).to_have_attribute("data-status", "accepted")

    # --- a coordinator of another pool of the same consortium, and an outsider: 404 ---
    for who in ("oncology", "outsider"):
        page = opened(who)
        response = page.goto(f"/cases/{case_id}")
        assert response.status == 404, who
        assert page.goto(f"/orgs/{consortium['pool']}/queue").status in (403, 404)

    # --- the consortium administrator's page (desktop) ---
    admin = opened("consortium")
    admin.goto(f"/orgs/{consortium['consortium']}")
    expect(admin.locator("[data-form='1-n']")).to_be_visible()
    expect(admin.locator("#rules li[data-priority='1']")).to_contain_text("妇科会诊组")
    screenshot(admin, "desktop-consortium")

    assert errors == []
