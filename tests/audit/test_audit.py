"""The audit log: append-only in the ORM and in the database; admins export it, see no cases."""

import csv
import io
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from app.audit.models import AppendOnlyError, AuditEvent
from app.extensions import db


@pytest.fixture
def logged(api_as, make_user, make_case):
    owner = make_user()
    case_id = make_case(owner)
    api_as(owner).get(f"/api/cases/{case_id}")
    return owner, case_id


def test_orm_cannot_change_or_delete_audit_rows(app, logged):
    with app.app_context():
        row = db.session.scalars(sa.select(AuditEvent)).first()
        row.action = "tampered"
        with pytest.raises(AppendOnlyError):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.scalars(sa.select(AuditEvent)).first())
        with pytest.raises(AppendOnlyError):
            db.session.flush()
        db.session.rollback()


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"])
def test_database_refuses_changes_to_audit_rows(app, logged, statement):
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(sa.text(statement))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == before


def test_case_audit_lists_views_with_ip_and_agent(api_as, logged):
    owner, case_id = logged
    items = api_as(owner).get(f"/api/cases/{case_id}/audit", headers={"User-Agent": "HZ-test/1"}).json["items"]
    assert [(e["action"], e["status"], e["user_id"]) for e in items] == [
        ("create_case", 201, owner), ("get_case", 200, owner)]
    assert all(e["ip"] == "127.0.0.1" for e in items)
    assert set(items[0]) >= {"at", "user_id", "action", "detail"}


def test_rendered_frames_are_audited_once_per_series(api_as, make_user, make_case):
    from tests.imaging.dicom_samples import study_files, upload

    owner = make_user()
    case_id = make_case(owner)
    api = api_as(owner)
    api.post(f"/api/cases/{case_id}/files", data={"files": upload(study_files("98892001"))},
             content_type="multipart/form-data")
    items = api.get(f"/api/cases/{case_id}/instances").json["items"]
    for item in items:
        for window in ("", "?wc=40&ww=400"):
            assert api.get(item["rendered"] + window).status_code == 200
    views = [e for e in api.get(f"/api/cases/{case_id}/audit").json["items"] if e["action"] == "view_images"]
    assert len(views) == len({i["series_uid"] for i in items}) == 2


def test_admin_exports_csv_but_sees_no_case(api_as, make_user, logged):
    owner, case_id = logged
    admin = api_as(make_user(role="admin"))
    assert admin.get(f"/api/cases/{case_id}").status_code == 404
    assert admin.get("/api/cases").json["items"] == []
    r = admin.get("/api/admin/audit.csv")
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert {"create_case", "get_case"} <= {row["action"] for row in rows}
    assert any(row["action"] == "get_case" and row["status"] == "404" for row in rows)
    assert api_as(owner).get("/api/admin/audit.csv").status_code == 403


def test_admin_manages_accounts(api_as, make_user, client):
    admin = api_as(make_user(role="admin"))
    r = admin.post("/api/admin/users", json={"email": "new@test.huizhen", "name": "新医生", "password": "long-enough-1",
                                             "specialty": "oncology", "institution": "新医院", "level": "county"})
    assert r.status_code == 201
    uid = r.json["id"]
    login = {"email": "new@test.huizhen", "password": "long-enough-1"}
    assert client.post("/api/auth/token", json=login).status_code == 200
    assert admin.patch(f"/api/admin/users/{uid}", json={"active": False}).json["active"] is False
    assert client.post("/api/auth/token", json=login).status_code == 401
    assert any(u["id"] == uid for u in admin.get("/api/admin/users").json["items"])
    doctor = api_as(make_user())
    assert doctor.get("/api/admin/users").status_code == 403


def test_the_audit_csv_neutralises_formulas_and_gives_detail_as_json(api_as, make_user, client):
    admin = api_as(make_user(role="admin"))
    hostile = ("=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "-@x")
    for n, ua in enumerate(hostile):
        admin.post("/api/admin/users", headers={"User-Agent": ua},
                   json={"email": f"u{n}@test.huizhen", "name": "x", "password": "long-enough-1",
                         "specialty": "radiology", "institution": "院"})
    r = admin.post("/api/admin/users", json={"email": "=cmd@test.huizhen", "name": "x", "password": "long-enough-1",
                                             "specialty": "radiology", "institution": "院"})
    assert r.status_code == 201
    admin.patch(f"/api/admin/users/{r.json['id']}", json={"active": False})
    rows = list(csv.DictReader(io.StringIO(admin.get("/api/admin/audit.csv").get_data(as_text=True))))
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    agents = {row["user_agent"] for row in rows}
    assert {"'" + ua for ua in hostile} <= agents
    update = next(row for row in rows if row["action"] == "admin.update_user")
    assert json.loads(update["detail"]) == {"user_id": r.json["id"], "active": False}


def test_probing_case_ids_over_http_cannot_flood_the_audit_log(app, api_as, make_user, make_case):
    # Each refusal was one more row, a synchronous commit, without limit, burying the real accesses of
    # every case id a prober names. Now HTTP_REFUSALS_PER_MINUTE of them are audited a minute; past that
    # a refusal is a 429, unaudited, while what the user may open is served as before.
    limit = app.config["HTTP_REFUSALS_PER_MINUTE"]
    others = make_case(make_user())
    prober_user = make_user()
    own = make_case(prober_user)
    prober = api_as(prober_user)
    answers = [prober.get(f"/api/cases/{case_id}").status_code for case_id in range(1000, 1200)]
    assert answers == [404] * limit + [429] * (200 - limit)
    r = prober.get(f"/api/cases/{others}")
    assert r.status_code == 429
    assert r.json == {"error": "too many refused requests", "detail": "try again in a minute"}
    assert prober.get(f"/api/cases/{own}").status_code == 200  # allowed requests are served
    assert api_as(make_user()).get(f"/api/cases/{others}").status_code == 404  # per user: another is audited
    with app.app_context():
        refusals = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.status == 404))
    assert refusals == limit + 1


def test_refusals_past_the_limit_are_answered_429_on_dicomweb_and_admin_routes_too(app, api_as, make_user):
    limit = app.config["HTTP_REFUSALS_PER_MINUTE"]
    prober = api_as(make_user())
    dicomweb = [prober.get(f"/dicomweb/cases/{case_id}/studies").status_code for case_id in range(1000, 1000 + limit)]
    assert dicomweb == [404] * limit
    assert prober.get("/dicomweb/cases/999/studies").status_code == 429
    assert prober.get("/api/admin/users").status_code == 429
    with app.app_context():
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.status != 200))
    assert rows == limit


def test_every_admin_request_is_audited_including_reads_and_failed_attempts(app, api_as, make_user):
    # Listing every account (names, emails, institutions) left no row, nor did an administrator's failed
    # attempts: demoting the last active admin (409), a taken email (409), an unknown account (404).
    admin_id = make_user(role="admin")
    admin = api_as(admin_id)
    assert admin.get("/api/admin/users").status_code == 200
    assert admin.patch(f"/api/admin/users/{admin_id}", json={"role": "doctor"}).status_code == 409
    body = {"email": "dup@test.huizhen", "name": "x", "password": "long-enough-1", "specialty": "radiology",
            "institution": "院"}
    assert admin.post("/api/admin/users", json=body).status_code == 201
    assert admin.post("/api/admin/users", json=body).status_code == 409
    assert admin.patch("/api/admin/users/99999", json={"active": False}).status_code == 404
    with app.app_context():
        rows = [(e.user_id, e.action, e.status, e.detail) for e in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action.like("admin.%")).order_by(AuditEvent.id))]
    assert [(r[1], r[2]) for r in rows] == [
        ("admin.list_users", 200), ("admin.update_user", 409), ("admin.create_user", 201),
        ("admin.create_user", 409), ("admin.update_user", 404)]
    assert all(r[0] == admin_id for r in rows)
    assert rows[1][3] == {"error": "the last active platform administrator cannot be deactivated or demoted",
                          "user_id": admin_id}
    assert rows[4][3] == {"error": "user not found", "user_id": 99999}


def test_the_audit_csv_is_streamed_in_chunks_with_every_row(app, api_as, make_user):
    # The log grows with every access: the export was built whole in memory before its first byte went.
    admin = api_as(make_user(role="admin"))
    with app.app_context():
        db.session.execute(sa.insert(AuditEvent), [{"action": f"bulk-{n}", "status": 200} for n in range(2500)])
        db.session.commit()
    r = admin.get("/api/admin/audit.csv", buffered=False)
    assert r.status_code == 200
    assert r.is_streamed
    chunks = [c if isinstance(c, bytes) else c.encode() for c in r.response]
    assert len(chunks) >= 3  # 1,000 rows a chunk
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [row["action"] for row in rows if row["action"].startswith("bulk-")] == [f"bulk-{n}" for n in range(2500)]
    assert rows[-1]["action"] == "admin.audit_export"  # the export is itself in the log it exports
