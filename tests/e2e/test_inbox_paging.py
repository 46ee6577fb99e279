"""The inbox's paged sections on a 360-px phone: the gp's 我发起的会诊 shows 20 of their cases and
its total, 查看更多 opens the next page at that section, 上一页 goes back; nothing overflows the screen."""

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(120)


def test_paging_a_section_on_a_phone(app, demo, open_as):
    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        start = datetime(2026, 11, 1, 8, 0)
        db.session.add_all(Case(owner_id=demo["gp"], title=f"草稿 {i}", clinical_question="请会诊", status="draft",
                                created_at=start + timedelta(minutes=i)) for i in range(25))
        db.session.commit()
        mine = list(db.session.scalars(
            sa.select(Case.id).where(Case.owner_id == demo["gp"], Case.status != "info_requested")
            .order_by(Case.created_at.desc(), Case.id.desc())))
    assert len(mine) > 20
    page = open_as("gp", phone=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    section = page.locator("#section-my_cases")
    expect(section.locator(".case-row")).to_have_count(20)
    expect(section.locator("h2 .count")).to_have_text(str(len(mine)))

    section.locator("a.more").click()
    page.wait_for_url("**/?section=my_cases&page=2#section-my_cases")
    rows = section.locator(".case-row")
    expect(rows).to_have_count(min(len(mine) - 20, 20))
    assert [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.caseId)")] == mine[20:40]
    assert section.bounding_box()["y"] < 740  # the link lands on the section, not the page's top
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    section.locator("a.prev").click()
    page.wait_for_url("**/?section=my_cases&page=1#section-my_cases")
    expect(section.locator(".case-row")).to_have_count(20)
    assert errors == []
