"""The specialist ranking reads the metrics module's figures: the picker (GET /api/specialists) and
the coordinator's queue suggestions rank the same hand-made track records the same way, with the
same figures the doctor's evaluation reports, and a record too thin to count neither helps nor hurts.
"""

from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.cases.models import CaseEvent
from app.core.time import utcnow
from app.extensions import db
from app.orgs.models import Availability
from tests.metrics.conftest import add_case

H = timedelta(hours=1)
BASE = 50 + 30  # specialty fit + a tertiary hospital, no open cases
CODES = ("median_hours_to_opinion", "within_due_pct", "acceptance_pct", "mean_rating", "cases_received")


@pytest.fixture
def records(app, world, api_as, make_user):
    """Give the world's pool three gynecologists with hand-made records over the last weeks.

    fast (world's gyn): 10 cases, opinion in 6 h, all within 48 h, 10 accepts, all rated 5.
    slow (world's gyn2): 10 cases, opinion in 30 h (6) or 60 h (4, late), 10 accepts and 2 declines,
    rated 3 (5) and 2 (5).
    new: 2 cases, opinion in 2 h, rated 5 — below every scored metric's minimum n.
    """
    new = make_user(specialty="gynecology", institution_id=world["tertiary"])
    r = api_as(world["cadmin"]).post(f"/api/orgs/{world['pool']}/members", json={"user_id": new, "role": "member"})
    assert r.status_code == 201, r.json
    fast, slow, gp = world["gyn"], world["gyn2"], world["gp"]
    start = utcnow() - timedelta(days=20)
    elsewhere = make_user(specialty="radiology")
    with app.app_context():
        for i in range(10):
            add_case(owner=gp, consultant=fast, submitted=start + i * H, accepted=1, answered=6, rating=5)
            add_case(owner=gp, consultant=slow, submitted=start + i * H, accepted=4, answered=30 if i < 6 else 60,
                     rating=3 if i < 5 else 2)
        for i in range(2):
            add_case(owner=gp, consultant=new, submitted=start + i * H, accepted=1, answered=2, rating=5)
            # slow declined two cases that went to someone else.
            declined = add_case(owner=gp, consultant=elsewhere, submitted=start + i * H)
            db.session.add(CaseEvent(case_id=declined.id, actor_id=slow, action="decline", at=start + i * H))
        db.session.commit()
    return {"fast": fast, "slow": slow, "new": new}


def _figures(item: dict) -> dict:
    return {m["code"]: (m["value"], m["n"], m["suppressed"]) for m in item["track_record"]["metrics"]}


def _check_order_and_reasons(ranked: list[dict], ids: dict, id_of) -> None:
    ranked = [r for r in ranked if id_of(r) in ids.values()]
    assert [id_of(r) for r in ranked] == [ids["fast"], ids["new"], ids["slow"]]
    by = {name: next(r for r in ranked if id_of(r) == uid) for name, uid in ids.items()}
    fast, slow, new = by["fast"], by["slow"], by["new"]
    # fast: (48 − 6)·10/48 + (100 − 80)/2 + (100 − 80)/4 + (5 − 3)·5 = 8.75 + 10 + 5 + 10
    assert fast["score"] == BASE + 33.75
    # slow: (48 − 30)·10/48 + max(−10, (60 − 80)/2) + (83.33 − 80)/4 + (2.5 − 3)·5 = 3.75 − 10 + 0.83 − 2.5
    assert slow["score"] == pytest.approx(BASE - 7.92, abs=0.01)
    assert new["score"] == BASE  # too few to count: neither helped nor held back
    assert "出具意见中位 6 小时（近12个月 10 例）(median hours to opinion: 6 h over 10 cases, last 12 months)" \
        in fast["reasons"]
    assert "按时答复率 100%（近12个月 10 例）(answered within due time: 100% of 10, last 12 months)" in fast["reasons"]
    assert "接诊率 100%（近12个月 10 例）(acceptance rate: 100% of 10, last 12 months)" in fast["reasons"]
    assert "平均评分 5.0/5（近12个月 10 次）(mean rating 5.0 of 10, last 12 months)" in fast["reasons"]
    assert "近12个月收到会诊 10 例 (cases received: 10, last 12 months)" in fast["reasons"]
    assert not any("样本不足" in r for r in fast["reasons"])
    assert "出具意见中位 30 小时（近12个月 10 例）(median hours to opinion: 30 h over 10 cases, last 12 months)" \
        in slow["reasons"]
    assert "按时答复率 60%（近12个月 10 例）(answered within due time: 60% of 10, last 12 months)" in slow["reasons"]
    assert "接诊率 83%（近12个月 12 例）(acceptance rate: 83% of 12, last 12 months)" in slow["reasons"]
    assert "平均评分 2.5/5（近12个月 10 次）(mean rating 2.5 of 10, last 12 months)" in slow["reasons"]
    assert ("样本不足，不计入排序：出具意见时间中位数（2/5）、按时答复率（2/10）、接诊率（2/10）、平均评分（2/5）"
            "（近12个月）(too few to count, last 12 months: median hours to opinion 2 of 5, "
            "answered within due time 2 of 10, acceptance rate 2 of 10, mean rating 2 of 5)") in new["reasons"]
    assert not any(r.startswith(("出具意见中位", "平均评分")) for r in new["reasons"])
    assert "近12个月收到会诊 2 例 (cases received: 2, last 12 months)" in new["reasons"]


def test_picker_ranks_by_the_metrics_with_reasons(api_as, world, records, make_case):
    case_id = make_case(world["gp"], specialty="gynecology")
    r = api_as(world["gp"]).get(f"/api/specialists?case_id={case_id}")
    assert r.status_code == 200, r.json
    items = r.json["items"]
    assert [i["id"] for i in items[:3]] == [records["fast"], records["new"], records["slow"]]
    _check_order_and_reasons(items, records, lambda i: i["id"])
    fast = items[0]
    # The older stats block holds the same figures (suppressed ones as null).
    assert fast["stats"] == {"answered_cases": 10, "median_response_hours": 6.0, "mean_rating": 5.0, "ratings": 10}
    assert items[1]["stats"] == {"answered_cases": 2, "median_response_hours": None, "mean_rating": None,
                                 "ratings": 2}
    assert _figures(fast) == {"median_hours_to_opinion": (6.0, 10, False), "within_due_pct": (100.0, 10, False),
                              "acceptance_pct": (100.0, 10, False), "mean_rating": (5.0, 10, False),
                              "cases_received": (10.0, 10, False)}
    today = utcnow().date()
    assert fast["track_record"]["period"] == {"from": (today - timedelta(days=364)).isoformat(),
                                              "to": today.isoformat()}


def test_the_picker_puts_an_away_specialist_last_and_says_until_when(api_as, world, records, make_case):
    """Away specialists are not suggested (README); the picker ranked one first all the same, and the
    page preselects the first: an urgent case shared with a doctor on leave for three weeks."""
    until = utcnow() + timedelta(days=21)
    assert api_as(records["fast"]).put("/api/me/away", json={"until": until.isoformat()}).status_code == 200
    case_id = make_case(world["gp"], specialty="gynecology", urgency="urgent")
    items = api_as(world["gp"]).get(f"/api/specialists?case_id={case_id}").json["items"]
    assert [i["id"] for i in items] == [records["new"], records["slow"], records["fast"]]
    away = items[-1]
    assert away["away_until"].startswith(until.date().isoformat())
    assert f"外出至 {until.date().isoformat()}，暂不接诊 (away until {until.date().isoformat()})" in away["reasons"]
    assert [i["away_until"] for i in items[:-1]] == [None, None]
    # Back: ranked first again, with the same score (only the order and the reason said away).
    assert api_as(records["fast"]).put("/api/me/away", json={"until": None}).status_code == 200
    back = api_as(world["gp"]).get(f"/api/specialists?case_id={case_id}").json["items"][0]
    assert (back["id"], back["score"], back["away_until"]) == (records["fast"], away["score"], None)


def test_queue_suggestions_rank_the_same_way(api_as, world, records, pooled_case):
    r = api_as(world["coord"]).get(f"/api/orgs/{world['pool']}/queue")
    assert r.status_code == 200, r.json
    (item,) = r.json["items"]
    suggestions = item["suggestions"]
    assert [s["specialist"]["id"] for s in suggestions] == [records["fast"], records["new"], records["slow"]]
    _check_order_and_reasons(suggestions, records, lambda s: s["specialist"]["id"])
    assert all(s["reasons"][-1] == "可接诊 (available)" for s in suggestions)
    # The profile reads the same record.
    profile = api_as(world["gp"]).get(f"/api/specialists/{records['slow']}").json
    assert profile["stats"] == {"answered_cases": 10, "median_response_hours": 30.0, "mean_rating": 2.5,
                                "ratings": 10}
    assert profile["track_record"] == suggestions[2]["track_record"]


def test_figures_match_the_doctors_evaluation(api_as, world, records, make_case):
    case_id = make_case(world["gp"], specialty="gynecology")
    items = {i["id"]: i for i in api_as(world["gp"]).get(f"/api/specialists?case_id={case_id}").json["items"]}
    for name, uid in records.items():
        ev = api_as(uid).get(f"/api/users/{uid}/evaluation").json  # the default period: the same window
        assert ev["period"] == items[uid]["track_record"]["period"]
        reported = {m["code"]: (m["value"], m["n"], m.get("suppressed", False)) for m in ev["against"]["pool"]}
        assert _figures(items[uid]) == {code: reported[code] for code in CODES}, name


@contextmanager
def counting(app):
    """Collect the SQL statements the app runs inside the block."""
    seen: list[str] = []

    def on_execute(conn, cursor, statement, *args):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)


def test_figures_come_from_one_batched_read_whatever_the_number_of_candidates(app, api_as, world, records,
                                                                               make_case, make_user):
    gp = api_as(world["gp"])
    case_id = make_case(world["gp"], specialty="gynecology")
    url = f"/api/specialists?case_id={case_id}"
    name = gp.get(url).json["items"][0]["name"]  # also builds the stored months once
    with counting(app) as many:
        n_many = len(gp.get(url).json["items"])
    with counting(app) as one:
        assert len(gp.get(f"{url}&q={name}").json["items"]) == 1
    assert n_many == 3
    assert len(one) == len(many)

    coord, queue = api_as(world["coord"]), f"/api/orgs/{world['pool']}/queue"
    for _ in range(3):
        shared = make_case(world["gp"], specialty="gynecology")
        assert gp.post(f"/api/cases/{shared}/share", json={"org_id": world["consortium"]}).status_code == 200
    assert len(coord.get(queue).json["items"]) == 3
    with counting(app) as three:
        coord.get(queue)
    with app.app_context():  # two of the three away: one candidate left
        db.session.add_all([Availability(user_id=records[w], away_until=utcnow() + timedelta(days=3)) for w in
                            ("fast", "slow")])
        db.session.commit()
    with counting(app) as alone:
        items = coord.get(queue).json["items"]
    assert {len(i["suggestions"]) for i in items} == {1}
    assert len(alone) == len(three)
    # The metrics are read once per queue, not once per case.
    assert sum("metric_cells" in s for s in three) == sum("metric_cells" in s for s in many)
