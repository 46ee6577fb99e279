"""The consortium dashboard in a phone browser: figures and charts drawn, the peer group switched,
a CSV and the monthly PDF report downloaded, no script errors; an outsider gets a 404."""

import sqlalchemy as sa

from tests.e2e.conftest import screenshot


def test_dashboard_on_a_phone(app, live, demo, open_as):
    from app.extensions import db
    from app.metrics.history import seed_history
    from app.orgs.models import Org

    with app.app_context():
        seed_history(cases=600)
        db.session.commit()
        consortium = db.session.scalar(sa.select(Org.id).where(Org.kind == "consortium"))
    page = open_as("consortium", phone=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"/orgs/{consortium}/dashboard")
    page.wait_for_selector("#dashboard[data-loaded=consortium]")
    assert page.locator("#key-figures .figure").count() == 9
    assert page.locator("#quartiles .strip svg").count() >= 1
    assert page.locator("#trend-chart svg").count() == 1
    screenshot(page, "dashboard")
    page.select_option("#peer-group", "level")
    page.wait_for_selector("#dashboard[data-loaded=level]")
    with page.expect_download() as info:
        page.click("a.csv[data-table=members]")
    text = open(info.value.path(), encoding="utf-8").read()  # noqa: SIM115 - read once
    assert text.startswith("institution_id,institution_name,code,value")
    assert "peers=level" in page.locator("a.csv[data-table=gaps]").get_attribute("href")
    # The monthly PDF report: the link follows the month picker and downloads a PDF.
    page.fill("#report-month", "2000-02")
    assert page.locator("#report-link").get_attribute("href").endswith("/report.pdf?month=2000-02")
    with page.expect_download() as info:
        page.click("#report-link")
    with open(info.value.path(), "rb") as f:
        assert f.read(5) == b"%PDF-"
    assert errors == []
    outsider = open_as("outsider", phone=True)
    response = outsider.goto(f"/orgs/{consortium}/dashboard")
    assert response.status == 404
