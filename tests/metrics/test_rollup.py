"""The monthly rollup: stored months, the live partial pieces, rebuilding after a step, half-hour medians."""

import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from app.core.time import utcnow
from app.extensions import db
from app.metrics.models import MetricCell, MetricMonth
from app.metrics.rollup import split
from app.metrics.service import compute
from tests.metrics.conftest import H, add_case

JAN = (datetime(2025, 1, 1), datetime(2025, 2, 1))


def _doctor(app, who, span=JAN):
    with app.app_context():
        return compute(level="doctor", ids=[who], start=span[0], end=span[1]).get((who,), {})


def test_split_into_whole_months_and_pieces():
    assert split(datetime(2024, 12, 15), datetime(2025, 3, 10)) == (
        ["2025-01", "2025-02"], [(datetime(2024, 12, 15), datetime(2025, 1, 1)),
                                 (datetime(2025, 3, 1), datetime(2025, 3, 10))])
    assert split(datetime(2025, 1, 1), datetime(2026, 1, 1))[0][-1] == "2025-12"
    assert split(datetime(2025, 1, 3), datetime(2025, 1, 20)) == ([], [(datetime(2025, 1, 3), datetime(2025, 1, 20))])


def test_whole_months_are_stored_and_agree_with_partial_pieces(app, mworld):
    stored = _doctor(app, mworld["dA1"])
    with app.app_context():
        assert db.session.scalars(sa.select(MetricMonth.month).where(MetricMonth.kind == "doctor")).all() == ["2025-01"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(MetricCell)) > 0
    # The same cases read from two partial pieces around no whole month (nothing stored for them).
    live = _doctor(app, mworld["dA1"], span=(datetime(2024, 12, 20), datetime(2025, 1, 31, 23)))
    assert {c: (s.n, s.value, s.lo, s.hi) for c, s in live.items()} == {
        c: (s.n, s.value, s.lo, s.hi) for c, s in stored.items()}
    assert stored["median_hours_to_opinion"].value == pytest.approx(16.0)


def test_a_step_on_an_old_case_rebuilds_its_month(app, mworld, api_as):
    before = _doctor(app, mworld["dB"])
    assert before["mean_rating"].n == 0
    r = api_as(mworld["gp"]).post(f"/api/cases/{mworld['declined']}/close",
                                  json={"rating": 2, "outcome": "referral_needed", "advice": "confirmed_plan"})
    assert r.status_code == 200, r.json
    after = _doctor(app, mworld["dB"])  # January 2025 was stored; the close (dated today) touched it
    assert (after["mean_rating"].n, after["mean_rating"].value) == (1, pytest.approx(2.0))
    assert after["referral_avoided_pct"].n == 1


def test_a_case_passing_its_due_time_makes_its_month_stale(app, mworld):
    now = utcnow()
    last_month = (datetime(now.year, now.month, 1) - timedelta(days=1)).replace(day=1)
    span = (last_month, datetime(now.year, now.month, 1))
    with app.app_context():
        case = add_case(owner=mworld["gp"], consultant=mworld["dB"], submitted=last_month + H)
        case.due_at = utcnow() + timedelta(seconds=2)  # open and not yet due
        db.session.commit()
    assert _doctor(app, mworld["dB"], span)["within_due_pct"].n == 0  # stored with the month
    time.sleep(2.5)
    assert _doctor(app, mworld["dB"], span)["within_due_pct"].n == 1  # now past due, without any step


def test_medians_count_each_time_to_the_nearest_half_hour(app, mworld):
    march = datetime(2025, 3, 3, 8)
    with app.app_context():
        for minutes in (70, 80, 100, 14, 45):  # 1 h, 1.5 h, 1.5 h, 0 h, 1 h (a quarter past rounds up)
            add_case(owner=mworld["gp"], consultant=mworld["dC"], submitted=march, accepted=minutes / 60)
        db.session.commit()
    for span in ((datetime(2025, 3, 1), datetime(2025, 4, 1)), (datetime(2025, 3, 2), datetime(2025, 3, 30))):
        got = _doctor(app, mworld["dC"], span)["median_hours_to_accept"]
        assert (got.n, got.value) == (5, pytest.approx(1.0))  # 0, 1, 1, 1.5, 1.5
        assert (got.lo, got.hi) == (pytest.approx(0.0), pytest.approx(1.5))


def test_a_case_shared_again_leaves_its_old_month(app, make_case, make_user, api_as):
    """Declined and shared again, a case counts in the month of the new sharing and no longer in the old."""
    from app.cases.models import Case, CaseEvent

    owner, first, second = make_user(), make_user(specialty="gynecology"), make_user(specialty="gynecology")
    case_id = make_case(owner)
    assert api_as(owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": first}).status_code == 200
    now = utcnow()
    last_month = (datetime(now.year, now.month, 1) - timedelta(days=1)).replace(day=1)
    span = (last_month, datetime(now.year, now.month, 1))
    with app.app_context():  # as if shared last month
        db.session.get(Case, case_id).submitted_at = last_month + H
        db.session.execute(sa.update(CaseEvent).where(CaseEvent.case_id == case_id).values(at=last_month + H))
        db.session.commit()
    assert _doctor(app, first, span)["cases_received"].n == 1  # last month is stored now
    assert api_as(first).post(f"/api/cases/{case_id}/decline", json={"reason": "出差"}).status_code == 200
    assert api_as(owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": second}).status_code == 200
    assert _doctor(app, first, span).get("cases_received") is None  # no case of theirs left in the month


def test_a_negative_time_counts_as_zero_in_stored_and_live_cells(app, mworld):
    """A pause recorded longer than the whole wait (answered 2 h after sharing, 5 h paused) counts as 0 h,
    the same in a stored month (whole) and in a partial piece (live), and keeps every other time."""
    with app.app_context():
        for answered, paused in ((2, 5), (1, 0), (4, 0), (8, 0)):
            add_case(owner=mworld["gp"], consultant=mworld["dC"], submitted=datetime(2025, 1, 10, 8),
                     accepted=0.5, answered=answered, paused_h=paused)
        db.session.commit()
    for span in (JAN, (datetime(2025, 1, 2), datetime(2025, 1, 31))):
        stat = _doctor(app, mworld["dC"], span)["median_hours_to_opinion"]
        assert (stat.n, stat.value) == (4, 2.5)  # times 0, 1, 4, 8
