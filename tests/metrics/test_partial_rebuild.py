"""Rebuilding only the units a change touched gives exactly the cells a full rebuild gives.

After each kind of change (a new case, accept, information asked and answered, an MDT colleague
invited, opinion, close with rating, a pooled case assigned,
moved to another pool and given to another doctor, a step on a case of an old month, an open case
passing its due time) the stored cells of every level and month are compared with the cells
computed from the cases for the whole month, which is what a full rebuild stores.
"""

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from app.cases.models import Case
from app.core.time import utcnow
from app.extensions import db
from app.metrics.models import MetricCell, MetricDirty, MetricMonth
from app.metrics.rollup import _encode, _journal, live_cells, month_bounds, refresh

LEVELS = ("doctor", "institution", "pool")


def _months() -> list[str]:
    """The months stored: January 2025 (the hand-made world), last month and this month (the steps)."""
    now = utcnow()
    last = datetime(now.year, now.month, 1) - timedelta(days=1)
    return ["2025-01", f"{last:%Y-%m}", f"{now:%Y-%m}"]


def _stored(level: str) -> dict:
    return {(c.month, c.unit_id, c.code): (c.n, c.k, c.s, c.ss, c.hist)
            for c in db.session.scalars(sa.select(MetricCell).where(MetricCell.kind == level))}


def _full(level: str, months: list[str]) -> dict:
    out = {}
    for month in months:
        for (unit, _), by_code in live_cells(level=level, start=month_bounds(month)[0],
                                             end=month_bounds(month)[1]).items():
            for code, c in by_code.items():
                out[(month, unit, code)] = (c.n, c.k, c.s, c.ss, None if c.hist is None else _encode(c.hist))
    return out


@pytest.fixture
def check(app):
    """Refresh every level's stored months and compare them with a full rebuild; return the dirty
    units the refresh found, {(level, month): {unit}}, and whether it rebuilt every stored month whole."""

    def run() -> dict:
        months = _months()
        with app.app_context():
            _journal()  # what refresh runs first
            db.session.commit()
            dirty: dict = {}
            for kind, month, unit in db.session.execute(sa.select(
                    MetricDirty.kind, MetricDirty.month, MetricDirty.unit_id)):
                dirty.setdefault((kind, month), set()).add(unit)
            built = {(m.kind, m.month): m.built_at for m in db.session.scalars(sa.select(MetricMonth))}
            for level in LEVELS:
                refresh(level=level, months=months)
                assert _stored(level) == _full(level, months), level
            rebuilt_whole = {(m.kind, m.month) for m in db.session.scalars(sa.select(MetricMonth))
                             if (m.kind, m.month) in built and m.built_at != built[(m.kind, m.month)]}
            assert not db.session.scalar(sa.select(sa.func.count()).select_from(MetricDirty)
                                         .where(MetricDirty.month.in_(months)))
            db.session.commit()
        return {"dirty": dirty, "whole": rebuilt_whole}

    return run


def test_partial_rebuilds_equal_full_rebuilds(app, world, mworld, api_as, make_user, make_case, make_institution,
                                              check):
    gp, coord, cadmin = api_as(world["gp"]), api_as(world["coord"]), api_as(world["cadmin"])
    other_inst = make_institution(level="provincial")
    cadmin.post(f"/api/orgs/{world['consortium']}/institutions", json={"institution_id": other_inst,
                                                                        "side": "provider"})
    other = cadmin.post("/api/orgs", json={"kind": "doctor_group", "name": "肿瘤会诊组",
                                           "parent_id": world["consortium"]}).json["id"]
    coord2, gyn3 = make_user(institution_id=other_inst), make_user(specialty="gynecology", institution_id=other_inst)
    for who, role in ((coord2, "coordinator"), (gyn3, "member")):
        assert cadmin.post(f"/api/orgs/{other}/members", json={"user_id": who, "role": role}).status_code == 201
    this_month = f"{utcnow():%Y-%m}"
    check()  # every month built whole

    # A new case shared with a specialist, accepted, answered, closed with a rating.
    direct = make_case(world["gp"], specialty="gynecology")
    assert gp.post(f"/api/cases/{direct}/share", json={"specialist_id": world["gyn"]}).status_code == 200
    found = check()
    assert world["gyn"] in found["dirty"][("doctor", this_month)]
    assert found["whole"] == set()  # only the touched units were rebuilt
    gyn = api_as(world["gyn"])
    assert gyn.post(f"/api/cases/{direct}/accept").status_code == 200
    check()
    # Information asked and answered (the paused clock, "information requested"), an MDT colleague.
    assert gyn.post(f"/api/cases/{direct}/questions", json={"question": "请补充超声报告"}).status_code == 200
    check()
    assert gp.post(f"/api/cases/{direct}/answers", json={"answer": "已上传"}).status_code == 200
    radiologist = make_user(specialty="radiology", institution_id=world["tertiary"])
    r = gyn.post(f"/api/cases/{direct}/participants", json={"user_id": radiologist, "discipline": "radiology"})
    assert r.status_code == 201, r.json
    check()
    assert gyn.post(f"/api/cases/{direct}/opinion", json={"diagnosis": "子宫肌瘤", "recommendations": "随访"}
                    ).status_code == 200
    check()
    assert gp.post(f"/api/cases/{direct}/close", json={"rating": 4, "outcome": "referral_avoided",
                                                        "advice": "new_advice"}).status_code == 200
    check()
    with app.app_context():
        cells = _stored("doctor")
    for code in ("info_request_pct", "mdt_pct"):  # rebuilt unit by unit, each case's rows looked up one by one
        assert cells[(this_month, world["gyn"], code)][:2] == (1, 1)

    # A pooled case: assigned to gyn, moved to the other pool (gyn is no actor of that step, yet
    # loses the case), then given to gyn3 of another hospital.
    pooled = make_case(world["gp"], specialty="gynecology")
    assert gp.post(f"/api/cases/{pooled}/share", json={"org_id": world["consortium"]}).status_code == 200
    check()
    assert coord.post(f"/api/cases/{pooled}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    check()
    r = coord.post(f"/api/cases/{pooled}/reroute", json={"org_id": other})
    assert r.status_code == 200, r.json
    found = check()
    assert world["gyn"] in found["dirty"][("doctor", this_month)]  # the previous doctor, from the case's mark
    assert world["tertiary"] in found["dirty"][("institution", this_month)]
    assert {world["pool"], other} <= found["dirty"][("pool", this_month)]
    assert found["whole"] == set()
    r = api_as(coord2).post(f"/api/cases/{pooled}/assign", json={"specialist_id": gyn3})
    assert r.status_code == 200, r.json
    check()

    # A step on a case of January 2025: that month's units are rebuilt, dated by the case's sharing.
    r = api_as(mworld["gp"]).post(f"/api/cases/{mworld['declined']}/close",
                                  json={"rating": 2, "outcome": "referral_needed", "advice": "confirmed_plan"})
    assert r.status_code == 200, r.json
    found = check()
    assert found["dirty"][("doctor", "2025-01")] == {mworld["dB"]}
    assert found["whole"] == set()

    # An open case passes its due time with no step. Time is moved instead of waited for: the case's
    # due time is set in the past and the stored months as if built before it.
    late = make_case(world["gp"], specialty="gynecology")
    assert gp.post(f"/api/cases/{late}/share", json={"specialist_id": world["gyn2"]}).status_code == 200
    check()
    due = utcnow() - timedelta(minutes=1)
    with app.app_context():
        db.session.get(Case, late).due_at = due
        db.session.execute(sa.update(MetricMonth).where(MetricMonth.month == this_month).values(
            stale_after=due, built_at=due - timedelta(hours=1)))
        db.session.commit()
        before = _stored("doctor")
    check()
    with app.app_context():
        after = _stored("doctor")
    key = (this_month, world["gyn2"], "within_due_pct")
    assert before[key][0] == 0
    assert after[key][0] == 1  # counted as past due now
