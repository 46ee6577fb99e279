"""GET /api/cases costs a fixed number of queries, however many cases its page holds.

Guards the list's hot path (docs/BENCHMARKS.md, search section): the viewer's participations and
pools are looked up once (not per case, for each listed case's role), and the page is read with its
people and its pools' names in the statement that ranks it. Counted on the run's own database
(SQLite, or PostgreSQL with DATABASE_URL).
"""

from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app.extensions import db

# The signed-in user, the viewer's reach, the ranked page; a list without words also counts its
# matches (up to 1000) in a query of its own.
QUERIES = {"卵巢囊肿": 3, None: 4}


@pytest.fixture
def app_overrides():
    return {"API_TOKEN_CACHE_SECONDS": 3600}  # the bearer token's own lookup stays out of the counts


@contextmanager
def statements(app):
    """Collect the SQL statements run meanwhile (the token's bookkeeping aside)."""
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def on_execute(conn, cursor, sql, *args):
        if "api_tokens" not in sql:
            seen.append(sql)

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)


@pytest.fixture
def coordinator_sees_every_way(world, make_case, api_as):
    """The pool's coordinator sees eight cases, each titled 卵巢囊肿: five waiting in the pool, one shared
    with them by name, one of their own and one they were invited into; plus a draft they must not see."""
    gp = api_as(world["gp"])
    expected = {}
    for n in range(5):
        case_id = make_case(world["gp"], title=f"卵巢囊肿 {n}", specialty="gynecology")
        assert gp.post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"]}).status_code == 200
        expected[case_id] = "coordinator"
    case_id = make_case(world["gp"], title="卵巢囊肿 会诊")
    assert gp.post(f"/api/cases/{case_id}/share", json={"specialist_id": world["coord"]}).status_code == 200
    expected[case_id] = "consultant"
    expected[make_case(world["coord"], title="卵巢囊肿 自己的")] = "owner"
    case_id = make_case(world["gp"], title="卵巢囊肿 多学科")
    assert gp.post(f"/api/cases/{case_id}/share", json={"specialist_id": world["gyn"]}).status_code == 200
    gyn = api_as(world["gyn"])
    assert gyn.post(f"/api/cases/{case_id}/accept").status_code == 200
    r = gyn.post(f"/api/cases/{case_id}/participants", json={"user_id": world["coord"], "discipline": "radiology"})
    assert r.status_code == 201, r.json
    expected[case_id] = "participant"
    make_case(world["gp"], title="卵巢囊肿 草稿")
    return expected


@pytest.mark.parametrize("q", list(QUERIES))
def test_a_list_costs_the_same_queries_for_one_case_or_many(app, api_as, world, coordinator_sees_every_way, q):
    api = api_as(world["coord"])
    params = {"q": q} if q else {}
    assert api.get("/api/cases", query_string=params).status_code == 200  # the token's first use is written
    counts = {}
    for limit in (1, 4, 8):
        with statements(app) as seen:
            r = api.get("/api/cases", query_string={**params, "limit": limit})
        assert r.status_code == 200, r.json
        assert (len(r.json["items"]), r.json["total"]) == (limit, 8)
        counts[limit] = len(seen)
    assert counts == {1: QUERIES[q], 4: QUERIES[q], 8: QUERIES[q]}, counts


def test_listed_roles_and_pools_are_those_of_each_case_alone(api_as, world, coordinator_sees_every_way):
    api = api_as(world["coord"])
    listed = api.get("/api/cases", query_string={"q": "卵巢囊肿"}).json["items"]
    assert {c["id"]: c["role"] for c in listed} == coordinator_sees_every_way
    for item in listed:
        alone = api.get(f"/api/cases/{item['id']}").json
        assert (item["role"], item["pool"]) == (alone["role"], alone["pool"])
        assert item["pool"] == ({"id": world["pool"], "name": "妇科会诊组"} if item["role"] == "coordinator" else None)
        assert {k: alone[k] for k in item} == item
