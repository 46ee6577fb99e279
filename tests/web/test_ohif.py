"""The OHIF Viewer's routes over HTTP: its build, its per-case and per-link pages and configuration."""

import re

import pytest
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.extensions import db
from tests.imaging.dicom_samples import sample, upload


@pytest.fixture(autouse=True)
def ohif_build(app):
    """The pinned OHIF build, fetched with npm on the first run."""
    from app.ohif import assets

    return assets.fetch(app.config["OHIF_CACHE"])


@pytest.fixture
def case(make_user, make_case, api_as):
    """A case with CT_small and MR_small uploaded by its owner; an outsider beside it."""
    owner, outsider = make_user(), make_user()
    case_id = make_case(owner)
    r = api_as(owner).post(f"/api/cases/{case_id}/files", content_type="multipart/form-data",
                           data={"files": upload([sample("CT_small.dcm"), sample("MR_small.dcm")])})
    assert r.status_code == 200
    studies = list(dict.fromkeys(i["study_uid"] for i in r.json["accepted"]))  # in upload order
    return {"id": case_id, "owner": owner, "outsider": outsider, "studies": studies}


def config_of(js: str) -> dict:
    import json

    return json.loads(re.search(r"window\.config = (\{.*\});", js, re.S).group(1))


def test_the_build_is_served_with_its_types_and_the_viewers_csp(client, ohif_build):
    wasm = next(ohif_build.glob("*.wasm")).name
    r = client.get(f"/ohif/{wasm}")
    assert (r.status_code, r.mimetype) == (200, "application/wasm")
    assert "'wasm-unsafe-eval'" in r.headers["Content-Security-Policy"]
    assert "immutable" in r.headers["Cache-Control"] or "max-age=31536000" in r.headers["Cache-Control"]
    bundle = next(ohif_build.glob("app.bundle.*.js")).name
    r = client.get(f"/ohif/{bundle}")
    assert r.mimetype == "text/javascript"
    assert b'__webpack_require__.p = "/ohif/";' in r.data  # chunks load from under /ohif/
    assert client.get("/ohif/app.bundle.css").mimetype == "text/css"
    assert client.get("/ohif/no-such-file.js").status_code == 404
    assert client.get("/ohif/../config.py").status_code == 404


def test_a_participant_opens_the_case_in_ohif_with_the_session(client, login, case):
    login(case["owner"])
    page = client.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert f'href="/cases/{case["id"]}/ohif"' in page

    r = client.get(f"/cases/{case['id']}/ohif")
    assert r.status_code == 302
    assert r.location == f"/ohif/cases/{case['id']}/viewer?StudyInstanceUIDs={','.join(case['studies'])}"
    r = client.get(f"/ohif/cases/{case['id']}/viewer")  # the viewer's routes answer its page
    html = r.get_data(as_text=True)
    assert (r.status_code, r.mimetype) == (200, "text/html")
    assert '<script rel="preload" as="script" src="app-config.js">' in html
    assert not re.search(r"<script>", html)  # no inline script: the CSP allows none
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp
    assert "worker-src 'self' blob:" in csp
    assert "unsafe-eval'" not in csp.replace("'wasm-unsafe-eval'", "")
    assert r.headers["Referrer-Policy"] == "no-referrer"

    r = client.get(f"/ohif/cases/{case['id']}/app-config.js")
    assert r.mimetype == "text/javascript"
    js = r.get_data(as_text=True)
    assert js.startswith('window.PUBLIC_URL = "/ohif/";')
    config = config_of(js)
    assert config["routerBasename"] == f"/ohif/cases/{case['id']}"
    (source,) = config["dataSources"]
    assert source["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    root = f"http://localhost/dicomweb/cases/{case['id']}"
    assert {source["configuration"][k] for k in ("qidoRoot", "wadoRoot", "wadoUriRoot")} == {root}

    # The session cookie reads the case's DICOMweb root (as OHIF's requests do) but cannot store.
    r = client.get(f"/dicomweb/cases/{case['id']}/studies", headers={"Accept": "application/dicom+json"})
    assert r.status_code == 200
    assert sorted(s["0020000D"]["Value"][0] for s in r.json) == sorted(case["studies"])
    r = client.post(f"/dicomweb/cases/{case['id']}/studies", data=b"",
                    content_type='multipart/related; type="application/dicom"; boundary=x')
    assert r.status_code == 401


def test_people_off_the_case_and_strangers_get_no_ohif(client, login, case):
    paths = (f"/cases/{case['id']}/ohif", f"/ohif/cases/{case['id']}/", f"/ohif/cases/{case['id']}/app-config.js")
    for path in paths:
        r = client.get(path)
        assert r.status_code == 302
        assert r.location.startswith("/login")
    login(case["outsider"])
    for path in paths:
        assert client.get(path).status_code == 404, path
    assert client.get(f"/dicomweb/cases/{case['id']}/studies").status_code == 404


def test_a_share_link_opens_ohif_read_only_until_revoked(app, client, api_as, case):
    owner = api_as(case["owner"])
    link = owner.post(f"/api/cases/{case['id']}/links",
                      json={"scope": "read", "expires_in_hours": 1, "label": "colleague"}).json
    token = link["token"]
    assert link["viewer_url"] == f"http://localhost/viewer/link/{token}"

    r = client.get(f"/viewer/link/{token}")  # no account, no session
    assert r.status_code == 302
    assert r.location == f"/ohif/link/{token}/viewer?StudyInstanceUIDs={','.join(case['studies'])}"
    assert client.get(f"/ohif/link/{token}/viewer").status_code == 200
    config = config_of(client.get(f"/ohif/link/{token}/app-config.js").get_data(as_text=True))
    assert config["routerBasename"] == f"/ohif/link/{token}"
    assert config["dataSources"][0]["configuration"]["qidoRoot"] == f"http://localhost/dicomweb/link/{token}"
    with app.app_context():
        opened = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "link.viewer")).all()
        assert [(e.case_id, e.user_id, e.detail) for e in opened] == [(case["id"], None, {"link_id": link["id"]})]

    assert owner.delete(f"/api/cases/{case['id']}/links/{link['id']}").status_code == 204
    for path in (f"/viewer/link/{token}", f"/ohif/link/{token}/", f"/ohif/link/{token}/app-config.js"):
        assert client.get(path).status_code == 404, path
    assert client.get("/viewer/link/not-a-token").status_code == 404


def test_a_revoked_expired_or_unknown_link_tried_in_the_viewer_is_audited(app, client, api_as, case):
    # The DICOMweb root audits every refused use of a link; the viewer's URL (viewer_url, the one
    # people are sent) audited none: a revoked or expired link tried there left no row at all.
    from datetime import timedelta

    from app.core.time import utcnow
    from app.dicomweb.models import ShareLink

    owner = api_as(case["owner"])
    revoked, expired = (owner.post(f"/api/cases/{case['id']}/links", json={"expires_in_hours": 1}).json
                        for _ in range(2))
    assert owner.delete(f"/api/cases/{case['id']}/links/{revoked['id']}").status_code == 204
    with app.app_context():
        db.session.get(ShareLink, expired["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get(f"/viewer/link/{revoked['token']}").status_code == 404
    assert client.get(f"/viewer/link/{expired['token']}").status_code == 401
    assert client.get("/viewer/link/hzl_unknown").status_code == 404
    assert client.get(f"/ohif/link/{revoked['token']}/app-config.js").status_code == 404
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("link.%"))
                                  .order_by(AuditEvent.id)).all()
        assert [(e.action, e.case_id, e.user_id, e.status, (e.detail or {}).get("link_id")) for e in rows] == [
            ("link.viewer", case["id"], None, 404, revoked["id"]),
            ("link.viewer", case["id"], None, 401, expired["id"]), ("link.viewer", None, None, 404, None),
            ("link.viewer_page", case["id"], None, 404, revoked["id"])]
        assert all(t not in str(e.detail) for e in rows for t in (revoked["token"], expired["token"]))
