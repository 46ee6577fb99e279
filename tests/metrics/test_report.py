"""The monthly PDF report over HTTP: it opens, shows the dashboard's figures, and follows its access rule."""

import io

import pytest
from pypdf import PdfReader

from app.accounts.models import Institution
from app.extensions import db

JAN = "month=2025-01"


def pdf_text(data: bytes) -> str:
    """The PDF's text without whitespace (fpdf2's 2-byte CMap makes pypdf put a NUL before each character)."""
    raw = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return "".join(raw.replace("\x00", "").split())


def _report(api, org_id, query=JAN):
    return api.get(f"/api/orgs/{org_id}/report.pdf?{query}")


def test_report_shows_the_dashboards_figures(api_as, mworld, app):
    with app.app_context():
        name_a = db.session.get(Institution, mworld["A"]).name
    api = api_as(mworld["cadmin"])
    board = api.get(f"/api/orgs/{mworld['consortium']}/dashboard?from=2025-01-01&to=2025-01-31").json
    received = next(m for m in board["metrics"] if m["code"] == "cases_received")["value"]
    r = _report(api, mworld["consortium"])
    assert r.status_code == 200
    assert r.mimetype == "application/pdf"
    assert f"huizhen-report-{mworld['consortium']}-2025-01.pdf" in r.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(r.data))
    assert len(reader.pages) >= 2
    text = pdf_text(r.data)
    for expected in ("测试医联体", "2025年1月", "医联体2025年1月月度报告", name_a, "关键指标", "差距分析", "指标定义",
                     "收到会诊数6", "样本不足", "上月（2024年12月）"):
        assert expected in text, expected
    assert received == 6
    assert "本月无会诊数据" not in text


def test_report_names_peers_verdicts_and_gaps(api_as, mworld, app):
    """With the minimums lowered, the small world has peers, verdicts and gap rows, as on the dashboard."""
    from app.metrics import definitions
    from app.orgs.models import Org

    lowered = [definitions.BY_CODE[c] for c in ("mean_rating", "median_hours_to_accept",
                                                  "median_hours_to_opinion")]
    saved = [m.min_n for m in lowered]
    for m in lowered:
        object.__setattr__(m, "min_n", 1)
    try:
        api = api_as(mworld["cadmin"])
        board = api.get(f"/api/orgs/{mworld['consortium']}/dashboard?from=2025-01-01&to=2025-01-31").json
        text = pdf_text(_report(api, mworld["consortium"]).data)
        with app.app_context():
            db.session.get(Org, mworld["consortium"]).name_peers_ok = False
            db.session.commit()
        anonymous = pdf_text(_report(api, mworld["consortium"]).data)
    finally:
        for m, n in zip(lowered, saved, strict=True):
            object.__setattr__(m, "min_n", n)
    assert board["gaps"], board
    top = board["gaps"][0]
    assert top["best_peer"] != "an anonymous peer"
    row = "".join(f"{top['institution']['name']}{definitions.BY_CODE[top['code']].zh}".split())
    assert row in text
    assert f"{top['opportunity']:g}" in text
    assert "".join(top["best_peer"].split()) in text
    assert "向谁学习" in text
    assert "2.5小时" in text  # institution A's median hours to accept: 1, 2, 3, 3 (the dashboard's value)
    verdicts = {mv["verdict"] for r in board["members"] for mv in r["metrics"]} - {None}
    assert verdicts
    for verdict in verdicts:
        assert {"better": "优于同行", "no_different": "与同行无差异", "worse": "差于同行"}[verdict] in text
    assert "一位匿名同行" in anonymous
    assert "一位匿名同行" not in text


def test_empty_month_is_a_valid_pdf_saying_so(api_as, mworld):
    r = _report(api_as(mworld["cadmin"]), mworld["consortium"], "month=2024-06")
    assert r.status_code == 200
    text = pdf_text(r.data)
    assert "2024年6月无会诊数据" in text
    assert "测试医联体" in text


def test_default_month_is_the_last_complete_one(api_as, mworld):
    from app.core.time import utcnow
    from app.metrics.report import last_complete_month

    month = last_complete_month(utcnow().date())
    r = _report(api_as(mworld["gp"]), mworld["consortium"], "")
    assert r.status_code == 200
    assert month in r.headers["Content-Disposition"]
    current = f"{utcnow():%Y-%m}"
    r = _report(api_as(mworld["gp"]), mworld["consortium"], f"month={current}")
    assert r.status_code == 200
    assert "本月尚未结束" in pdf_text(r.data)


@pytest.mark.parametrize("month", ["2025-13", "2025-1", "2025/01", "jan", "1999-12", "9999-01", "2025-01-01"])
def test_bad_month_is_a_400_naming_it(api_as, mworld, month):
    r = _report(api_as(mworld["cadmin"]), mworld["consortium"], f"month={month}")
    assert r.status_code == 400
    assert "month" in r.json["error"]


def test_outsider_and_other_consortium_get_404(api_as, mworld, make_user, make_institution):
    other_admin = make_user(institution_id=make_institution())
    admin = api_as(make_user(role="admin"))
    other = admin.post("/api/orgs", json={"kind": "consortium", "name": "另一医联体"}).json["id"]
    assert admin.post(f"/api/orgs/{other}/members", json={"user_id": other_admin, "role": "admin"}).status_code == 201
    for uid in (mworld["outsider"], other_admin):
        assert _report(api_as(uid), mworld["consortium"]).status_code == 404
    assert _report(api_as(mworld["gp"]), other).status_code == 404
    assert _report(api_as(mworld["gp"]), 2**31 - 1).status_code == 404
    assert _report(api_as(other_admin), other).status_code == 200


def test_pool_report_lists_its_doctors(api_as, mworld, app):
    from app.accounts.models import User

    with app.app_context():
        doctor = db.session.get(User, mworld["dA1"]).name
    r = _report(api_as(mworld["dA1"]), mworld["pool"])
    assert r.status_code == 200
    text = pdf_text(r.data)
    assert "妇科组" in text
    assert "医师集团2025年1月月度报告" in text
    assert "成员医生指标与同行对比" in text
    assert "".join(doctor.split()) in text


def test_names_are_text_not_markup(api_as, mworld, app):
    """Markup-like names print as they are; the longest names the columns allow wrap instead of overflowing."""
    from app.orgs.models import Org

    hostile = '<b>**粗体**</b> & "引号" =1+1 -- 😀'
    longest = "长" * 200
    with app.app_context():
        db.session.get(Institution, mworld["B"]).name = hostile
        db.session.get(Institution, mworld["C"]).name = longest
        db.session.get(Org, mworld["consortium"]).name = "医" * 200
        db.session.commit()
    r = _report(api_as(mworld["cadmin"]), mworld["consortium"])
    assert r.status_code == 200
    text = pdf_text(r.data)
    assert "".join(hostile.replace("😀", "").split()) in text  # a glyph the font lacks is left out
    assert longest in text
    assert "医" * 200 in text


def test_dashboard_page_links_the_report_in_both_languages(client, app, mworld):
    """The page offers the last complete month's report; the link and its label are translated."""
    from app.accounts.models import User
    from app.core.time import utcnow
    from app.metrics.report import last_complete_month
    from tests.conftest import PASSWORD
    from tests.web.conftest import page_csrf

    with app.app_context():
        email = db.session.get(User, mworld["cadmin"]).email
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": page_csrf(client)}).status_code == 302
    month = last_complete_month(utcnow().date())
    html = client.get(f"/orgs/{mworld['consortium']}/dashboard").get_data(as_text=True)
    assert "下载月度报告 (PDF)" in html
    assert f'href="/api/orgs/{mworld["consortium"]}/report.pdf?month={month}"' in html
    assert f'value="{month}"' in html
    client.get("/lang/en")
    html = client.get(f"/orgs/{mworld['consortium']}/dashboard").get_data(as_text=True)
    assert "Download monthly report (PDF)" in html
    assert "Report month" in html
    r = client.get(f"/api/orgs/{mworld['consortium']}/report.pdf?month={month}")  # the page's session suffices
    assert r.status_code == 200
    assert r.data.startswith(b"%PDF-")
