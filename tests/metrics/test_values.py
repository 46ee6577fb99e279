"""Exact metric values on the hand-made world, computed in SQL (run on SQLite and PostgreSQL)."""

from datetime import datetime, timedelta

import pytest

from app.core.time import utcnow
from app.metrics.definitions import BY_CODE, probing
from app.metrics.rollup import live_cells
from app.metrics.service import compute, stat_of

JAN = (datetime(2025, 1, 1), datetime(2025, 2, 1))


def _values(app, level, ids, *, span=JAN, **kw):
    with app.app_context():
        return compute(level=level, ids=ids, start=span[0], end=span[1], **kw)


def test_doctor_values_with_ties_pauses_declines(app, mworld):
    got = _values(app, "doctor", [mworld["dA1"]])[(mworld["dA1"],)]
    assert got["cases_received"].n == 4
    assert got["median_hours_to_accept"].value == pytest.approx(3.0)  # 1, 3, 3: the tie is the median
    assert got["median_hours_to_opinion"].value == pytest.approx(16.0)  # 10, 20 − 4 h paused, 50
    assert got["within_due_pct"].n == 4  # three answered and the open one past due
    assert got["within_due_pct"].value == pytest.approx(50.0)
    assert got["acceptance_pct"].n == 4  # three accepts and the decline
    assert got["acceptance_pct"].value == pytest.approx(75.0)
    assert got["info_request_pct"].value == pytest.approx(100 / 3)
    assert got["referral_avoided_pct"].n == 2  # the case closed before the survey is not counted
    assert got["referral_avoided_pct"].value == pytest.approx(50.0)
    assert got["mean_rating"].value == pytest.approx(4.0)
    assert got["mdt_pct"].value == pytest.approx(100 / 3)


def test_declined_case_counts_for_who_took_it(app, mworld):
    got = _values(app, "doctor", [mworld["dB"]])[(mworld["dB"],)]
    assert got["cases_received"].n == 1
    assert got["median_hours_to_accept"].value == pytest.approx(2.0)  # from the second sharing
    assert got["acceptance_pct"].value == pytest.approx(100.0)


def test_institution_even_median_and_collapse(app, mworld):
    got = _values(app, "institution", [mworld["A"], mworld["B"], mworld["C"]])
    a = got[(mworld["A"],)]
    assert a["cases_received"].n == 5
    assert a["median_hours_to_accept"].value == pytest.approx(2.5)  # 1, 2, 3, 3
    assert a["mean_rating"].value == pytest.approx(3.5)
    assert got[(mworld["C"],)]["cases_received"].n == 0  # only a withdrawn case
    whole = _values(app, "institution", [mworld["A"], mworld["B"], mworld["C"]], collapse=True)[()]
    assert whole["cases_received"].n == 6
    assert whole["median_hours_to_accept"].value == pytest.approx(2.0)  # 1, 2, 2, 3, 3


def test_pool_level(app, mworld):
    got = _values(app, "pool", [mworld["pool"]])[(mworld["pool"],)]
    assert got["cases_received"].n == 1
    assert got["mdt_pct"].value == pytest.approx(100.0)


def test_empty_period(app, mworld):
    got = _values(app, "doctor", [mworld["dA1"]], span=(datetime(2025, 2, 1), datetime(2025, 3, 1)))
    assert got == {}
    assert stat_of(got, (mworld["dA1"],), BY_CODE["cases_received"]).value == 0
    assert stat_of(got, (mworld["dA1"],), BY_CODE["mean_rating"]).value is None


def test_by_month(app, mworld):
    got = _values(app, "doctor", [mworld["dA1"]], span=(datetime(2024, 12, 1), datetime(2025, 3, 1)),
                  by_month=True, collapse=True)
    assert set(got) == {("2025-01",)}
    assert got[("2025-01",)]["cases_received"].n == 4


def test_median_interval_contains_median(app, mworld):
    got = _values(app, "doctor", [mworld["dA1"]])[(mworld["dA1"],)]
    s = got["median_hours_to_opinion"]
    assert s.lo <= s.value <= s.hi
    assert (s.lo, s.hi) == (pytest.approx(10.0), pytest.approx(50.0))  # n = 3: the whole range
    r = got["within_due_pct"]
    assert r.lo < 50 < r.hi


def test_rollup_matches_separate_passes(app, mworld):
    """The dashboard's one-pass rollup gives the same figures as computing each view on its own."""
    from app.metrics.service import compute_rollup

    ids = [mworld[k] for k in ("dA1", "dA2", "dB", "dC")]
    members = ids[:3]
    span = (datetime(2024, 12, 1), datetime(2025, 3, 1))
    with app.app_context():
        rolled = compute_rollup(level="doctor", ids=ids, members=members, start=span[0], end=span[1])
        entities = compute(level="doctor", ids=ids, start=span[0], end=span[1])
        whole = compute(level="doctor", ids=members, start=span[0], end=span[1], collapse=True)
        months = compute(level="doctor", ids=members, start=span[0], end=span[1], collapse=True, by_month=True)
    for got, want in ((rolled.entities, entities), (rolled.whole, whole), (rolled.months, months)):
        for key, stats in want.items():
            for code, stat in stats.items():
                assert got[key][code].n == stat.n, (key, code)
                assert got[key][code].value == pytest.approx(stat.value), (key, code)
                if code.startswith("median") and key and not isinstance(key[0], str):
                    assert (got[key][code].lo, got[key][code].hi) == (pytest.approx(stat.lo), pytest.approx(stat.hi))


def test_a_case_taken_back_from_a_specialist_who_left_the_pool_is_nobodys_answer(app, world, pooled_case, api_as):
    """Removing a designated specialist from the pool records a return to the pool by whoever removed
    them: it counted as that person's decline (a consortium admin who was never asked), and as the
    hospital's and the pool's. A designated specialist's own decline back to the pool still counts."""
    coord, cadmin = api_as(world["coord"]), api_as(world["cadmin"])
    url = f"/api/cases/{pooled_case}"
    assert coord.post(f"{url}/assign", json={"specialist_id": world["gyn2"]}).status_code == 200
    assert api_as(world["gyn2"]).post(f"{url}/decline", json={"reason": "外出"}).status_code == 200
    assert coord.post(f"{url}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    assert cadmin.delete(f"/api/orgs/{world['pool']}/members/{world['gyn']}").status_code == 204
    assert [e["action"] for e in coord.get(f"{url}/timeline").json["items"]][-4:] == [
        "assign", "return_to_pool", "assign", "return_to_pool"]
    now = utcnow()
    span = (now - timedelta(days=1), now + timedelta(days=1))

    def acceptance(level, unit):
        return stat_of(_values(app, level, [unit], span=span, codes=["acceptance_pct"]), (unit,),
                       BY_CODE["acceptance_pct"])

    assert acceptance("doctor", world["cadmin"]).n == 0
    assert acceptance("doctor", world["gyn"]).n == 0  # nobody asked them to answer either
    gyn2 = acceptance("doctor", world["gyn2"])
    assert (gyn2.n, gyn2.value) == (1, 0.0)
    assert acceptance("institution", world["tertiary"]).n == 1  # gyn2's decline, not the removal
    assert acceptance("pool", world["pool"]).n == 1


def test_mdt_counts_a_colleague_of_another_discipline_only(app, make_user, make_case, api_as):
    """mdt_pct is defined as the accepted cases into which the specialist brought a colleague of
    another discipline; a second gynecologist asked in by the gynecologist counted too."""
    owner, consultant = make_user(), make_user(specialty="gynecology")
    colleagues = {"gynecology": make_user(specialty="gynecology"), "radiology": make_user(specialty="radiology")}
    gyn = api_as(consultant)
    for discipline, colleague in colleagues.items():
        case_id = make_case(owner, specialty="gynecology")
        assert api_as(owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": consultant}).status_code == 200
        assert gyn.post(f"/api/cases/{case_id}/accept").status_code == 200
        r = gyn.post(f"/api/cases/{case_id}/participants", json={"user_id": colleague, "discipline": discipline})
        assert r.status_code == 201, r.json
    now = utcnow()
    span = (now - timedelta(days=1), now + timedelta(days=1))
    got = _values(app, "doctor", [consultant], span=span, codes=["mdt_pct"])[(consultant,)]["mdt_pct"]
    assert (got.n, got.value) == (2, pytest.approx(50.0))
    with app.app_context(), probing():  # as a stored month's few dirty units are rebuilt: case by case
        cells = live_cells(level="doctor", start=span[0], end=span[1], ids=[consultant])
    assert (sum(c["mdt_pct"].n for c in cells.values()), sum(c["mdt_pct"].k for c in cells.values())) == (2, 1)
