"""The org dashboard over HTTP: contract shape, suppression, peers, verdicts, access, CSV."""

import csv
import io

import pytest

from app.extensions import db
from app.orgs.models import Org

Q = "from=2025-01-01&to=2025-01-31"


def _metric(items, code):
    return next(m for m in items if m["code"] == code)


def _member(board, key, ident):
    return next(r for r in board["members"] if r[key]["id"] == ident)


def test_consortium_dashboard_shape_and_suppression(api_as, mworld):
    r = api_as(mworld["cadmin"]).get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}")
    assert r.status_code == 200, r.json
    board = r.json
    assert board["org"]["id"] == mworld["consortium"]
    assert board["period"] == {"from": "2025-01-01", "to": "2025-01-31"}
    received = _metric(board["metrics"], "cases_received")
    assert (received["value"], received["n"]) == (6, 6)
    assert received["peer"]["n_peers"] == 4  # the spread of the four members
    a = _member(board, "institution", mworld["A"])
    within = _metric(a["metrics"], "within_due_pct")
    assert within == {**within, "value": None, "suppressed": True, "n": 5}  # below the minimum of 10
    accept = _metric(a["metrics"], "median_hours_to_accept")
    assert accept["value"] is None
    assert accept["n"] == 4
    assert accept["suppressed"] is True
    assert set(accept) >= {"code", "value", "n", "peer", "gap", "opportunity"}
    assert [m["code"] for m in board["metrics"]][:3] == ["cases_received", "median_hours_to_accept",
                                                          "median_hours_to_opinion"]
    assert len(board["trends"]["months"]) == 1


def test_pool_dashboard_compares_doctors(api_as, mworld, app):
    with app.app_context():
        db.session.get(Org, mworld["pool"]).name_peers_ok = False
        db.session.commit()
    r = api_as(mworld["dA1"]).get(f"/api/orgs/{mworld['pool']}/dashboard?{Q}")
    assert r.status_code == 200, r.json
    me = _member(r.json, "user", mworld["dA1"])
    received = _metric(me["metrics"], "cases_received")
    assert received["value"] == 4
    assert received["peer"]["p50"] == 1.0
    assert received["peer"]["n_peers"] == 2
    assert received["peer"]["percentile"] == 100


def test_verdict_gap_opportunity_and_naming(api_as, mworld, app):
    """Lower the minimum so the small world has verdicts; the best peer is named only with consent."""
    from app.metrics import definitions

    rating = definitions.BY_CODE["mean_rating"]
    object.__setattr__(rating, "min_n", 1)
    try:
        r = api_as(mworld["cadmin"]).get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}")
        a = _metric(_member(r.json, "institution", mworld["A"])["metrics"], "mean_rating")
        assert a["value"] == 3.5  # 5, 3, 4, 2
        with app.app_context():
            db.session.get(Org, mworld["consortium"]).name_peers_ok = False
            db.session.commit()
        r = api_as(mworld["cadmin"]).get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}")
        a = _metric(_member(r.json, "institution", mworld["A"])["metrics"], "mean_rating")
        assert a["peer"] is None  # no other member has a rating
    finally:
        object.__setattr__(rating, "min_n", 5)


def test_custom_peers_and_bad_peers(api_as, mworld):
    api = api_as(mworld["cadmin"])
    url = f"/api/orgs/{mworld['consortium']}/dashboard?{Q}"
    r = api.get(f"{url}&peers={mworld['B']},{mworld['C']}")
    assert r.status_code == 200, r.json
    a = _metric(_member(r.json, "institution", mworld["A"])["metrics"], "cases_received")
    assert a["peer"]["n_peers"] == 2
    assert a["peer"]["p50"] == 0.5
    assert api.get(f"{url}&peers=level").status_code == 200
    assert api.get(f"{url}&peers=region").status_code == 200
    assert api.get(f"{url}&peers=999999").status_code == 400


def test_chosen_peers_outside_the_org_are_refused(api_as, mworld, make_user, make_institution):
    """One chosen peer's "median" is that peer's own value: chosen peers must be the org's own members."""
    stranger_inst, stranger = make_institution(), make_user()
    api = api_as(mworld["cadmin"])
    url = f"/api/orgs/{mworld['consortium']}/dashboard?{Q}"
    for chosen in (stranger_inst, f"{mworld['B']},{stranger_inst}"):
        r = api.get(f"{url}&peers={chosen}")
        assert r.status_code == 400, r.json
        assert r.json["error"] == "chosen peers must be members of this org"
        assert r.json["detail"] == {"peers": [stranger_inst]}
    assert api.get(f"{url}&peers={stranger}").status_code == 400  # nor a doctor's id
    assert api.get(f"{url}&peers=x;1").status_code == 400
    assert api.get(f"/api/orgs/{mworld['consortium']}/dashboard?from=2025-02-01&to=2025-01-01").status_code == 400


@pytest.mark.parametrize("who", ["dA1", "gp", "cadmin"])
def test_who_may_see(api_as, mworld, who):
    assert api_as(mworld[who]).get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}").status_code == 200


def test_outsider_and_other_consortium_get_404(api_as, mworld, make_user, make_institution):
    other_inst = make_institution()
    other_admin = make_user(institution_id=other_inst)
    admin = api_as(make_user(role="admin"))
    other = admin.post("/api/orgs", json={"kind": "consortium", "name": "另一医联体"}).json["id"]
    assert admin.post(f"/api/orgs/{other}/members", json={"user_id": other_admin, "role": "admin"}).status_code == 201
    for uid in (mworld["outsider"], other_admin):
        r = api_as(uid).get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}")
        assert r.status_code == 404
    assert api_as(mworld["gp"]).get(f"/api/orgs/{other}/dashboard").status_code == 404
    assert api_as(mworld["gp"]).get(f"/api/orgs/{mworld['consortium']}/dashboard").status_code == 200


def test_csv_export_neutralises_formulas(api_as, mworld, app, make_user):
    with app.app_context():
        from app.accounts.models import Institution

        db.session.get(Institution, mworld["B"]).name = "=HYPERLINK(\"http://x\")"
        db.session.commit()
    api = api_as(mworld["cadmin"])
    for table in ("metrics", "members", "gaps", "trends"):
        r = api.get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}&format=csv&table={table}")
        assert r.status_code == 200
        assert r.mimetype == "text/csv"
        rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
        assert len(rows) >= (1 if table == "gaps" else 2)
    r = api.get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}&format=csv&table=members")
    names = {row[1] for row in csv.reader(io.StringIO(r.get_data(as_text=True)))}
    assert "'=HYPERLINK(\"http://x\")" in names
    assert not any(n.startswith(("=", "+", "-", "@")) for n in names)


def test_metric_definitions(api_as, mworld):
    items = api_as(mworld["gp"]).get("/api/metrics").json["items"]
    codes = {i["code"] for i in items}
    assert codes >= {"cases_received", "median_hours_to_accept", "median_hours_to_opinion", "within_due_pct",
                     "acceptance_pct", "info_request_pct", "referral_avoided_pct", "mean_rating", "mdt_pct"}
    assert all(set(i) >= {"code", "label", "unit", "direction", "definition"} for i in items)
    # Chinese first: the definition a user reads is in Chinese by default, the English beside it.
    for item in items:
        assert item["definition"] == item["definition_zh"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in item["definition_zh"]), item["code"]
        assert item["definition_en"]
        assert item["definition_en"] != item["definition_zh"]


def test_dashboard_follows_new_data(api_as, mworld, app):
    """The rollup is cached per data version: a new workflow step shows at once."""
    from datetime import datetime

    from tests.metrics.conftest import add_case

    url = f"/api/orgs/{mworld['consortium']}/dashboard?{Q}"
    api = api_as(mworld["cadmin"])
    assert _metric(api.get(url).json["metrics"], "cases_received")["value"] == 6
    assert _metric(api.get(url).json["metrics"], "cases_received")["value"] == 6  # from the cache
    with app.app_context():
        add_case(owner=mworld["gp"], consultant=mworld["dB"], submitted=datetime(2025, 1, 20), accepted=1)
        db.session.commit()
    assert _metric(api.get(url).json["metrics"], "cases_received")["value"] == 7


def _additive_leaks(board, key):
    """Additive metrics whose org figure is shown while exactly one member's is suppressed."""
    from app.metrics.definitions import BY_CODE

    leaks = []
    for whole in board["metrics"]:
        if BY_CODE[whole["code"]].kind not in ("rate", "mean") or whole["value"] is None:
            continue
        hidden = [r[key]["id"] for r in board["members"]
                  if (mv := _metric(r["metrics"], whole["code"]))["value"] is None and mv["n"] > 0]
        if len(hidden) == 1:
            leaks.append((whole["code"], hidden[0]))
    return leaks


def test_a_suppressed_member_does_not_follow_from_the_total(api_as, mworld, app):
    """A's within-due share (n=5) is suppressed; the consortium's share less B's and C's (shown here,
    and their doctors' in the public track records) would give it: the consortium's is withheld."""
    from datetime import datetime, timedelta

    from tests.metrics.conftest import add_case

    with app.app_context():
        for who, count in (("dB", 12), ("dC", 11)):
            for i in range(count):
                add_case(owner=mworld["gp"], consultant=mworld[who], accepted=1, answered=5 + 30 * (i % 3 == 0),
                         submitted=datetime(2025, 1, 10) + timedelta(hours=i))
        # February: ten cases each for A, B and C, no member suppressed in that month.
        for who in ("dA1", "dB", "dC"):
            for i in range(10):
                add_case(owner=mworld["gp"], consultant=mworld[who], accepted=1, answered=5,
                         submitted=datetime(2025, 2, 10) + timedelta(hours=i))
        db.session.commit()
    api = api_as(mworld["cadmin"])
    board = api.get(f"/api/orgs/{mworld['consortium']}/dashboard?{Q}").json
    whole = _metric(board["metrics"], "within_due_pct")
    assert (whole["n"], whole["value"], whole["suppressed_reason"]) == (29, None, "complementary")
    assert whole["ci95"] is None
    a, b, c = (_metric(_member(board, "institution", mworld[k])["metrics"], "within_due_pct") for k in "ABC")
    assert (a["n"], a["value"], a["suppressed_reason"]) == (5, None, "small_n")
    assert (b["n"], c["n"]) == (13, 11)
    assert None not in (b["value"], c["value"])
    assert board["trends"]["series"]["within_due_pct"] == [None]  # January adds up to the withheld total
    assert _additive_leaks(board, "institution") == []
    # Over two months A has 15: the total is shown, and so is February (no member suppressed in it),
    # but not January, which would give A's January by the same subtraction.
    two = api.get(f"/api/orgs/{mworld['consortium']}/dashboard?from=2025-01-01&to=2025-02-28").json
    assert _metric(two["metrics"], "within_due_pct")["value"] is not None
    january, february = two["trends"]["series"]["within_due_pct"]
    assert (january, february) == (None, 100.0)
    assert _metric(two["metrics"], "acceptance_pct")["value"] is not None


def test_few_peers_outside_the_org_are_not_compared(api_as, mworld, app, make_institution, make_user):
    """Compared by region, the hospitals outside the consortium are seen only in the quartiles and
    the best value: with one or two of them there, those would give their figures away."""
    from app.accounts.models import Institution

    region = "测试省 孤岛市"
    with app.app_context():
        for k in "ABC":
            db.session.get(Institution, mworld[k]).region = region
        db.session.commit()
    api = api_as(mworld["cadmin"])
    url = f"/api/orgs/{mworld['consortium']}/dashboard?{Q}&peers=region"

    def received_of_a():
        return _metric(_member(api.get(url).json, "institution", mworld["A"])["metrics"], "cases_received")

    first = received_of_a()
    assert first["peer"]["n_peers"] == 2  # B and C: members, seen anyway
    assert "peer_withheld" not in first
    make_institution(region=region)
    one_out = received_of_a()
    assert (one_out["peer"], one_out["best_peer"], one_out["peer_withheld"]) == (None, None, "too_few_peers")
    # A platform admin, who may read every hospital's figures anyway, is shown the comparison.
    as_admin = api_as(make_user(role="admin")).get(url).json
    assert _metric(_member(as_admin, "institution", mworld["A"])["metrics"], "cases_received")["peer"]["n_peers"] == 3
    for _ in range(3):  # up to four: quartiles, percentile and the best value would still solve theirs
        make_institution(region=region)
        assert received_of_a()["peer_withheld"] == "too_few_peers"
    make_institution(region=region)
    five_out = received_of_a()
    assert five_out["peer"]["n_peers"] == 7
    assert "peer_withheld" not in five_out

