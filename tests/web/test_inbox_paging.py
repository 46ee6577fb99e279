"""The inbox shows a page of each section, with its total and links through the rest.

A triage coordinator of a big pool may see tens of thousands of cases (their pool's, in none of the
inbox's sections) and a busy specialist thousands; the page reads a limited page of each section,
never the whole list. Runs on the run's own database (SQLite, or PostgreSQL with DATABASE_URL).
"""

import html as html_lib
import re
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.cases.models import Case
from app.cases.service import INBOX_PAGE
from app.extensions import db
from tests.web.conftest import page_csrf

AWAITING = 45  # shared with the coordinator by name: their 待我接诊 section, in pages of 20, 20 and 5
WAITING_IN_POOL = 60  # waiting in the pool they coordinate: seen in search and the queue, in no section


def add_cases(app, n: int, **columns) -> None:
    """Insert n cases, two to a creation time (so the order's tie-break on id is exercised)."""
    start = datetime(2026, 11, 1, 8, 0)
    with app.app_context():
        db.session.add_all(Case(title=f"病例 {i}", clinical_question="请会诊",
                                created_at=start + timedelta(minutes=i // 2), **columns) for i in range(n))
        db.session.commit()


def newest_first(app, *conditions) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Case.id).where(*conditions)
                                       .order_by(Case.created_at.desc(), Case.id.desc())))


def section(html: str, name: str) -> str:
    m = re.search(rf'id="section-{name}">(.*?)</section>', html, re.S)
    return m.group(1) if m else ""


def listed(part: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-case-id="(\d+)"', part)]


def more_link(part: str) -> str | None:
    m = re.search(r'<a class="more" rel="next" href="([^"]+)"', part)
    return html_lib.unescape(m.group(1)) if m else None


@contextmanager
def reads(app):
    """Collect the statements run and count the Case rows loaded meanwhile."""
    with app.app_context():
        engine = db.engine
    seen = {"sql": [], "cases": 0}

    def on_execute(conn, cursor, sql, *args):
        seen["sql"].append(sql)

    def on_load(target, context):
        seen["cases"] += 1

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(Case, "load", on_load)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(Case, "load", on_load)


def test_a_section_pages_through_its_cases_with_no_gap_or_overlap(app, client, login, world):
    add_cases(app, AWAITING, owner_id=world["gp"], consultant_id=world["coord"], status="submitted")
    add_cases(app, WAITING_IN_POOL, owner_id=world["gp"], pool_id=world["pool"], status="submitted")
    expected = newest_first(app, Case.consultant_id == world["coord"])
    login(world["coord"])

    with reads(app) as seen:
        page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    first = section(html, "awaiting_decision")
    assert listed(first) == expected[:INBOX_PAGE]
    assert f'<span class="count">{AWAITING}</span>' in first
    assert f"第 1–{INBOX_PAGE} 条，共 {AWAITING} 条" in first
    assert 'rel="prev"' not in first
    # Only a page of each section is read, not the coordinator's 105 visible cases; every statement
    # that reads whole case rows is limited.
    assert seen["cases"] == INBOX_PAGE
    case_reads = [sql for sql in seen["sql"] if "cases.clinical_question" in sql]
    assert case_reads
    assert all("LIMIT" in sql.upper() for sql in case_reads), case_reads
    # The pool's waiting cases stay out of the sections (they are the triage queue's), as before.
    assert not set(listed(html)) & set(newest_first(app, Case.pool_id == world["pool"]))

    pages, link = [listed(first)], more_link(first)
    assert link == "/?section=awaiting_decision&page=2#section-awaiting_decision"
    while link:
        html = client.get(link).get_data(as_text=True)
        part = section(html, "awaiting_decision")
        pages.append(listed(part))
        assert 'rel="prev"' in part
        link = more_link(part)
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [case_id for p in pages for case_id in p] == expected  # the next cases, no overlap, no gaps
    assert f"第 41–{AWAITING} 条，共 {AWAITING} 条" in section(html, "awaiting_decision")

    # Past the last page: the section says so and leads back to its first page.
    past = section(client.get("/?section=awaiting_decision&page=9").get_data(as_text=True), "awaiting_decision")
    assert listed(past) == []
    assert "这一页没有病例了" in past
    assert 'href="/#section-awaiting_decision"' in past


def test_paging_one_section_keeps_the_status_filter_and_the_others_on_their_first_page(app, client, login, world):
    add_cases(app, AWAITING, owner_id=world["gp"], consultant_id=world["coord"], status="submitted")
    add_cases(app, 25, owner_id=world["coord"], status="draft")
    login(world["coord"])
    html = client.get("/?status=submitted&section=awaiting_decision&page=2").get_data(as_text=True)
    assert listed(section(html, "awaiting_decision")) == newest_first(app, Case.consultant_id == world["coord"])[20:40]
    assert section(html, "my_cases") == ""  # drafts are filtered out by the status
    assert more_link(section(html, "awaiting_decision")) == (
        "/?status=submitted&section=awaiting_decision&page=3#section-awaiting_decision")

    html = client.get("/?section=awaiting_decision&page=2").get_data(as_text=True)
    mine = section(html, "my_cases")
    assert listed(mine) == newest_first(app, Case.owner_id == world["coord"])[:INBOX_PAGE]
    assert more_link(mine) == "/?section=my_cases&page=2#section-my_cases"


def test_a_doctor_with_few_cases_sees_them_all_and_no_more_link(app, client, login, world, make_case, api_as):
    add_cases(app, WAITING_IN_POOL, owner_id=world["gp"], pool_id=world["pool"], status="submitted")
    own = make_case(world["gyn2"], title="自己的病例")
    shared = [make_case(world["gp"], title=f"请会诊 {n}") for n in range(3)]
    for case_id in shared:
        assert api_as(world["gp"]).post(f"/api/cases/{case_id}/share",
                                        json={"specialist_id": world["gyn2"]}).status_code == 200
    login(world["gyn2"])
    with reads(app) as seen:
        html = client.get("/").get_data(as_text=True)
    assert sorted(listed(section(html, "awaiting_decision"))) == shared
    assert listed(section(html, "my_cases")) == [own]
    assert '<span class="count">3</span>' in section(html, "awaiting_decision")
    assert 'class="pager"' not in html
    assert "查看更多" not in html
    assert seen["cases"] == 4


def test_bad_paging_is_refused_naming_the_parameter(client, login, world):
    login(world["coord"])
    for query, field in (("section=everything", "section"), ("section=my_cases&page=0", "page"),
                         ("section=my_cases&page=x", "page")):
        r = client.get(f"/?{query}")
        assert r.status_code == 400, query
        assert field in r.get_data(as_text=True)


def test_english_inbox_pager(app, client, login, world):
    add_cases(app, 25, owner_id=world["coord"], status="draft")
    login(world["coord"])
    client.get("/lang/en?next=/")
    html = client.get("/?section=my_cases&page=2").get_data(as_text=True)
    mine = section(html, "my_cases")
    assert "21–25 of 25" in mine
    assert ">Previous</a>" in mine
    client.post("/logout", data={"csrf_token": page_csrf(client, "/")})


def test_a_section_of_more_than_a_thousand_says_1000_plus_and_pages_past_it(app, client, login, world):
    add_cases(app, 1030, owner_id=world["coord"], status="draft")
    login(world["coord"])
    mine = section(client.get("/").get_data(as_text=True), "my_cases")
    assert '<span class="count">1000+</span>' in mine
    assert "第 1–20 条，共 1000+ 条" in mine
    deep = section(client.get("/?section=my_cases&page=51").get_data(as_text=True), "my_cases")
    assert len(listed(deep)) == 20
    assert more_link(deep) == "/?section=my_cases&page=52#section-my_cases"
    last = section(client.get("/?section=my_cases&page=52").get_data(as_text=True), "my_cases")
    assert listed(last) == newest_first(app, Case.owner_id == world["coord"])[1020:]
    assert more_link(last) is None
