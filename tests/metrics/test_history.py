"""seed-demo --history: a labelled synthetic year, idempotent, that the dashboards can read."""

import sqlalchemy as sa

from app.cases.models import Case
from app.extensions import db
from app.metrics.history import CASES, LABEL


def test_history_is_labelled_idempotent_and_readable(runner, app, api_as):
    out = runner.invoke(args=["seed-demo", "--history"]).output
    assert f"demo history: {CASES} synthetic cases added" in out
    assert "demo history already present" in runner.invoke(args=["seed-demo", "--history"]).output
    with app.app_context():
        titles = db.session.scalars(sa.select(Case.title)).all()
        assert len(titles) == CASES
        assert all(t.startswith(LABEL) for t in titles)
        from app.accounts.models import User
        from app.orgs.models import Org

        admin = db.session.scalar(sa.select(User.id).where(User.email == "consortium@demo.huizhen"))
        coordinator = db.session.scalar(sa.select(User.id).where(User.email == "coordinator@demo.huizhen"))
        consortium = db.session.scalar(sa.select(Org.id).where(Org.kind == "consortium"))
        pool = db.session.scalar(sa.select(Org.id).where(Org.kind == "doctor_group"))
        poor = db.session.scalar(sa.select(User.id).where(User.email == "radiology3@demo.huizhen"))
    r = api_as(admin).get(f"/api/orgs/{consortium}/dashboard?peers=level")
    assert r.status_code == 200, r.json
    received = next(m for m in r.json["metrics"] if m["code"] == "cases_received")
    assert received["value"] > 1000
    assert any(row["metrics"][3]["value"] is not None for row in r.json["members"])
    assert r.json["gaps"] == sorted(r.json["gaps"], key=lambda g: -g["opportunity"])
    assert len(r.json["trends"]["months"]) >= 12
    assert api_as(coordinator).get(f"/api/orgs/{pool}/dashboard").status_code == 200
    # The deliberately poor radiologist, in a department of their hospital, against radiologists elsewhere.
    with app.app_context():
        platform = db.session.scalar(sa.select(User.id).where(User.email == "admin@demo.huizhen"))
        inst = db.session.get(User, poor).institution_id
    admin_api = api_as(platform)
    dept = admin_api.post("/api/orgs", json={"kind": "department", "name": "放射科", "institution_id": inst})
    assert dept.status_code == 201, dept.json
    assert admin_api.post(f"/api/orgs/{dept.json['id']}/members",
                          json={"user_id": poor, "role": "member"}).status_code == 201
    r = admin_api.get(f"/api/orgs/{dept.json['id']}/dashboard?peers=specialty")
    assert r.status_code == 200, r.json
    mine = {m["code"]: m for m in r.json["members"][0]["metrics"]}
    assert mine["median_hours_to_accept"]["verdict"] == "worse"
    assert mine["median_hours_to_accept"]["gap"] > 0
    assert mine["median_hours_to_accept"]["best_peer"]["name"] == "an anonymous peer"
    assert mine["within_due_pct"]["verdict"] in ("worse", "no_different")
    assert mine["mean_rating"]["verdict"] == "worse"
