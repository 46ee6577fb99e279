"""Security headers on every kind of answer, no version banner, HSTS in production, login limits."""

import requests

from app import create_app
from config import ProductionConfig
from tests.support.live import ThreadServer


def _check(r, *, no_store: bool):
    h = r.headers
    csp = h["Content-Security-Policy"]
    script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script
    assert "'unsafe-eval'" not in script
    assert "frame-ancestors 'self'" in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "same-origin"
    assert ("no-store" in h.get("Cache-Control", "")) is no_store, (r.url, h.get("Cache-Control"))
    server = h.get("Server", "")
    assert "Werkzeug" not in server, server
    assert "Python" not in server, server
    assert "Strict-Transport-Security" not in h  # plain HTTP in development


def test_every_kind_of_answer_carries_the_security_headers(app, make_case_in_progress, token_for):
    case_id, ids = make_case_in_progress()
    auth = {"Authorization": f"Bearer {token_for(ids['owner'])}"}
    with ThreadServer(app) as live:
        page = requests.get(live.url + "/login", timeout=10)
        assert page.status_code == 200
        _check(page, no_store=True)
        for path in (f"/api/cases/{case_id}", f"/api/cases/{case_id}/messages", "/api/me"):
            r = requests.get(live.url + path, headers=auth, timeout=10)
            assert r.status_code == 200
            _check(r, no_store=True)
        static = requests.get(live.url + "/static/huizhen.css", timeout=10)
        assert static.status_code == 200
        _check(static, no_store=False)
        for path, status in (("/api/cases/999999", 404), ("/no-such-page", 404), ("/api/cases", 401)):
            r = requests.get(live.url + path, headers=auth if status != 401 else {}, timeout=10)
            assert r.status_code == status
            _check(r, no_store=True)
            assert "Traceback" not in r.text


def test_production_adds_hsts_and_secure_cookies(database_url, tmp_path):
    app = create_app(ProductionConfig, SECRET_KEY="x" * 40, SQLALCHEMY_DATABASE_URI=database_url,
                     INSTANCE_PATH=str(tmp_path), UPLOAD_FOLDER=str(tmp_path / "u"))
    r = app.test_client().get("/login")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Secure" in r.headers["Set-Cookie"]
    assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]


def test_login_is_limited_per_account_as_well_as_per_address(app, client, make_user):
    app.config.update(LOGIN_RATE_LIMIT="100 per minute", LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")
    make_user(email="target@test.huizhen")
    for n in range(3):  # three addresses, one attempt each: allowed
        r = client.post("/api/auth/token", json={"email": "target@test.huizhen", "password": "guess"},
                        environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        assert r.status_code == 401
    r = client.post("/api/auth/token", json={"email": "TARGET@test.huizhen ", "password": "guess"},
                    environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert r.status_code == 429
    r = client.post("/login", data={"email": "target@test.huizhen", "password": "guess"},
                    environ_base={"REMOTE_ADDR": "10.0.0.98"})
    assert r.status_code in (400, 429)  # the page form: the CSRF check or the account limit refuses it
    other = client.post("/api/auth/token", json={"email": "other@test.huizhen", "password": "guess"},
                        environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert other.status_code == 401  # another account from that address is not blocked
