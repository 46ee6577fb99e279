"""Share links: created by owner and consultant, token shown once and stored hashed, listed, revoked, audited."""

import hashlib
import logging
from datetime import datetime, timedelta
from types import SimpleNamespace

import requests
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.core.time import utcnow
from app.dicomweb.models import ShareLink
from app.extensions import db
from tests.support.live import ThreadServer


def test_owner_creates_a_link_shown_once_and_stored_as_a_hash(app, api_as, world, make_link):
    link = make_link(scope="read", hours=48, label="县医院 PACS")
    assert set(link) >= {"id", "token", "dicomweb_url", "viewer_url", "expires_at"}
    assert link["dicomweb_url"] == f"http://localhost/dicomweb/link/{link['token']}"
    with app.app_context():
        row = db.session.get(ShareLink, link["id"])
        assert row.token_hash == hashlib.sha256(link["token"].encode()).hexdigest()
        assert link["token"] not in str([getattr(row, c.name) for c in ShareLink.__table__.columns])
        assert timedelta(hours=47) < row.expires_at - utcnow() <= timedelta(hours=48)
    listed = api_as(world["ids"]["owner"]).get(f"/api/cases/{world['case_id']}/links").json["items"]
    assert [(x["id"], x["scope"], x["label"], x["state"]) for x in listed] == [
        (link["id"], "read", "县医院 PACS", "active")]
    assert "token" not in listed[0]


def test_consultant_may_manage_links_participant_and_outsider_may_not(api_as, world):
    ids, case_id = world["ids"], world["case_id"]
    body = {"scope": "read_write", "expires_in_hours": 1}
    assert api_as(ids["consultant"]).post(f"/api/cases/{case_id}/links", json=body).status_code == 201
    assert api_as(ids["participant"]).post(f"/api/cases/{case_id}/links", json=body).status_code == 403
    assert api_as(ids["participant"]).get(f"/api/cases/{case_id}/links").status_code == 403
    assert api_as(ids["outsider"]).post(f"/api/cases/{case_id}/links", json=body).status_code == 404
    assert api_as(ids["removed"]).get(f"/api/cases/{case_id}/links").status_code == 404


def test_bad_link_bodies_are_400(api_as, world):
    api = api_as(world["ids"]["owner"])
    for body in ({"scope": "admin"}, {"expires_in_hours": 0}, {"expires_in_hours": "NaN"}, {"label": "x" * 201},
                 {"expires_in_hours": 0.001}, {"expires_in_hours": 0.09}):
        r = api.post(f"/api/cases/{world['case_id']}/links", json=body)
        assert r.status_code == 400, body
        assert next(iter(body)) in str(r.json), r.json
    assert api.post(f"/api/cases/{world['case_id']}/links", json={"expires_in_hours": 0.1}).status_code == 201


def test_the_audit_rows_of_creating_and_revoking_a_link_name_the_link(app, api_as, world, make_link):
    first, second = make_link(), make_link()
    api = api_as(world["ids"]["owner"])
    assert api.delete(f"/api/cases/{world['case_id']}/links/{second['id']}").status_code == 204
    assert api_as(world["ids"]["participant"]).delete(
        f"/api/cases/{world['case_id']}/links/{first['id']}").status_code == 403
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action.in_(["create_link", "revoke_link"]))
                                  .order_by(AuditEvent.id)).all()
        assert [(r.action, r.user_id, r.status, (r.detail or {}).get("link_id")) for r in rows] == [
            ("create_link", world["ids"]["owner"], 201, first["id"]),
            ("create_link", world["ids"]["owner"], 201, second["id"]),
            ("revoke_link", world["ids"]["owner"], 204, second["id"]),
            ("revoke_link", world["ids"]["participant"], 403, first["id"])]


def test_revoked_link_stops_at_once_and_uses_are_audited(app, client, api_as, world, make_link):
    link = make_link()
    root = f"/dicomweb/link/{link['token']}"
    assert client.get(f"{root}/studies").status_code == 200
    r = api_as(world["ids"]["owner"]).delete(f"/api/cases/{world['case_id']}/links/{link['id']}")
    assert r.status_code == 204
    assert client.get(f"{root}/studies").status_code == 404
    listed = api_as(world["ids"]["owner"]).get(f"/api/cases/{world['case_id']}/links").json["items"]
    assert listed[0]["state"] == "revoked"
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("dicomweb_%"))
                                  .order_by(AuditEvent.id)).all()
        assert [(r.case_id, r.status, (r.detail or {}).get("link_id")) for r in rows] == [
            (world["case_id"], 200, link["id"]), (world["case_id"], 404, link["id"])]
        assert all(link["token"] not in str(r.detail) for r in rows)
        made = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.case_id == world["case_id"])).all()
        assert {"create_link", "revoke_link"} <= set(made)


def test_expired_link_is_401_and_unknown_token_404(app, client, world, make_link):
    link = make_link()
    with app.app_context():
        db.session.get(ShareLink, link["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get(f"/dicomweb/link/{link['token']}/studies").status_code == 401
    assert client.get("/dicomweb/link/hzl_nope/studies").status_code == 404
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "dicomweb_search_studies")
                                .order_by(AuditEvent.id)).all()
        assert [(r.case_id, r.status, (r.detail or {}).get("link_id")) for r in rows] == [
            (world["case_id"], 401, link["id"]), (None, 404, None)]



def test_the_servers_access_logs_carry_no_link_token(app, caplog, world, make_link):
    # A link's token is its whole secret, kept only as a sha256; every request line of a link went
    # into werkzeug's (python run.py) and gunicorn's (production) access log in clear, to anyone
    # reading or shipping the logs, who could open the case's images until the link expired.
    token = make_link()["token"]
    caplog.set_level(logging.INFO, logger="werkzeug")
    with ThreadServer(app) as server:
        for path in (f"/dicomweb/link/{token}/studies", f"/viewer/link/{token}", f"/ohif/link/{token}/app-config.js"):
            # The viewer's build may not be fetched here: a 404 is logged just the same.
            requests.get(server.url + path, headers={"Referer": f"{server.url}/ohif/link/{token}/viewer"}, timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug" and "/link/" in r.getMessage()]
    assert len(lines) >= 3  # and the viewer's page the redirect leads to
    assert all(token not in line and "/link/[redacted]" in line for line in lines), lines

    from gunicorn.config import Config

    from app.core.gunicorn_log import RedactingLogger

    cfg = Config()
    logger = RedactingLogger(cfg)
    path = f"/dicomweb/link/{token}/studies"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path + "?limit=1", "PATH_INFO": path, "QUERY_STRING": "limit=1",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1",
               "HTTP_REFERER": f"https://huizhen.example/ohif/link/{token}/viewer", "HTTP_USER_AGENT": "OHIF"}
    resp = SimpleNamespace(status="200 OK", headers=[("Content-Type", "application/dicom+json")], sent=2)
    req = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    atoms = logger.atoms(resp, req, environ, datetime(2025, 1, 1, 0, 0, 1) - datetime(2025, 1, 1))
    line = cfg.access_log_format % atoms
    assert token not in line
    assert token not in str(atoms)
    assert "GET /dicomweb/link/[redacted]/studies?limit=1 HTTP/1.1" in line
