"""Logging in: API tokens, the web form, sessions, CSRF and rate limiting."""

import re
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa

from app.accounts.models import LoginSession, User
from app.core.time import utcnow
from app.extensions import db
from tests.conftest import PASSWORD


def _csrf(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_token_for_right_password(client, make_user):
    uid = make_user(email="Doc@Test.Huizhen")
    r = client.post("/api/auth/token", json={"email": " doc@test.huizhen ", "password": PASSWORD})
    assert r.status_code == 200
    assert r.json["token"].startswith("hz_")
    assert r.json["user"]["id"] == uid
    me = client.get("/api/me", headers={"Authorization": f"Bearer {r.json['token']}"})
    assert me.status_code == 200
    assert me.json["email"] == "doc@test.huizhen"


@pytest.mark.parametrize(("email", "password"), [
    ("doc@test.huizhen", "wrong-password"),
    ("nobody@test.huizhen", PASSWORD),
])
def test_wrong_credentials_are_401_with_error(client, make_user, email, password):
    make_user(email="doc@test.huizhen")
    r = client.post("/api/auth/token", json={"email": email, "password": password})
    assert r.status_code == 401
    assert r.json == {"error": "invalid email or password"}


def test_token_request_without_fields_names_them(client):
    r = client.post("/api/auth/token", json={"email": "a@b.c"})
    assert r.status_code == 400
    assert "password" in r.json["error"]
    r = client.post("/api/auth/token", data="not json", content_type="text/plain")
    assert r.status_code == 400
    assert r.json["error"] == "request body must be a JSON object"


def test_deactivated_account_cannot_log_in_or_use_tokens(app, client, make_user, token_for):
    uid = make_user(email="gone@test.huizhen")
    token = token_for(uid)
    from app.accounts.models import User
    from app.extensions import db
    with app.app_context():
        db.session.get(User, uid).active = False
        db.session.commit()
    assert client.post("/api/auth/token", json={"email": "gone@test.huizhen", "password": PASSWORD}).status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer hz_not-a-real-token", "Basic abc", "Bearer abc"])
def test_missing_or_bad_token_is_401_json(client, header):
    headers = {"Authorization": header} if header else {}
    r = client.get("/api/me", headers=headers)
    assert r.status_code == 401
    assert r.is_json
    assert r.json["error"] == "authentication required"


def test_expired_token_is_refused(client, make_user, token_for):
    token = token_for(make_user(), ttl=timedelta(seconds=-1))
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_revoked_token_is_refused_at_once(api_as, make_user):
    api = api_as(make_user())
    assert api.get("/api/me").status_code == 200
    assert api.delete("/api/auth/token").status_code == 204
    assert api.get("/api/me").status_code == 401


@pytest.mark.parametrize("app_overrides", [{"API_TOKEN_CACHE_SECONDS": 0}])  # rewinds the stored time below
def test_token_use_is_recorded_at_most_once_a_minute(app, client, make_user, token_for):
    from app.accounts.models import ApiToken
    from app.core.time import utcnow
    from app.extensions import db

    def last_used():
        with app.app_context():
            return db.session.scalar(db.select(ApiToken.last_used_at))

    headers = {"Authorization": f"Bearer {token_for(make_user())}"}
    assert last_used() is None
    before = utcnow()
    assert client.get("/api/me", headers=headers).status_code == 200
    first = last_used()
    assert first is not None
    assert first >= before - timedelta(seconds=1)
    assert client.get("/api/me", headers=headers).status_code == 200
    assert last_used() == first  # within the minute: no write
    with app.app_context():
        db.session.execute(db.update(ApiToken).values(last_used_at=first - timedelta(minutes=2)))
        db.session.commit()
    assert client.get("/api/me", headers=headers).status_code == 200
    assert last_used() >= first


def test_a_token_revoked_elsewhere_is_refused_within_the_cache_bound_and_through_this_process_at_once(
        app, client, make_user, token_for):
    import time

    from app.accounts.models import ApiToken
    from app.core.time import utcnow
    from app.extensions import db
    from config import TestingConfig

    assert 0 < TestingConfig.API_TOKEN_CACHE_SECONDS <= 5  # the configured bound
    # This app waits out a one-second bound instead: the same mechanism, four seconds sooner.
    bound = app.config["API_TOKEN_CACHE_SECONDS"] = 1
    first, second = (token_for(make_user()) for _ in range(2))
    for token in (first, second):
        assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # Another process revokes the first token straight in the database.
    started = time.monotonic()
    with app.app_context():
        db.session.execute(db.update(ApiToken).where(ApiToken.user_id == db.select(ApiToken.user_id).order_by(
            ApiToken.id).limit(1).scalar_subquery()).values(revoked_at=utcnow()))
        db.session.commit()
    while client.get("/api/me", headers={"Authorization": f"Bearer {first}"}).status_code == 200:
        assert time.monotonic() - started <= bound + 1
        time.sleep(0.2)
    # Revoked through this process: refused on the very next request, cache or not.
    assert client.delete("/api/auth/token", headers={"Authorization": f"Bearer {second}"}).status_code == 204
    assert client.get("/api/me", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken).where(
            ApiToken.revoked_at.is_not(None))) == 2


def test_tokens_are_stored_hashed(app, make_user, token_for):
    token = token_for(make_user())
    from app.accounts.models import ApiToken
    from app.extensions import db
    with app.app_context():
        stored = [t.token_hash for t in db.session.scalars(db.select(ApiToken))]
    assert token not in stored
    assert len(stored) == 1
    assert len(stored[0]) == 64


def test_web_login_form_logs_in_and_out(client, make_user):
    make_user(email="web@test.huizhen", name="张医生")
    page = client.get("/login").get_data(as_text=True)
    assert 'name="email"' in page
    assert 'name="password"' in page
    r = client.post("/login", data={"email": "web@test.huizhen", "password": PASSWORD,
                                    "csrf_token": _csrf(client)})
    assert r.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "张医生" in home.get_data(as_text=True)
    # The API accepts the browser session as well as bearer tokens.
    assert client.get("/api/me").json["email"] == "web@test.huizhen"
    r = client.post("/logout", data={"csrf_token": _csrf(client, "/")})
    assert r.status_code == 302
    assert client.get("/").status_code == 302


def test_web_login_wrong_password_shows_error(client, make_user):
    make_user(email="web@test.huizhen")
    r = client.post("/login", data={"email": "web@test.huizhen", "password": "nope",
                                    "csrf_token": _csrf(client)})
    assert r.status_code == 401
    assert "邮箱或密码错误" in r.get_data(as_text=True)


def test_form_post_without_csrf_token_is_refused(client, make_user):
    make_user(email="web@test.huizhen")
    r = client.post("/login", data={"email": "web@test.huizhen", "password": PASSWORD})
    assert r.status_code == 400
    assert "csrf" in r.get_data(as_text=True).lower()
    assert client.get("/").status_code == 302


def test_session_api_writes_need_csrf_header(client, make_user):
    make_user(email="web@test.huizhen")
    client.post("/login", data={"email": "web@test.huizhen", "password": PASSWORD, "csrf_token": _csrf(client)})
    r = client.delete("/api/auth/token")
    assert r.status_code == 400
    assert r.json["error"] == "csrf token missing or invalid"


def test_login_redirect_stays_on_site(client, make_user):
    make_user(email="web@test.huizhen")
    r = client.post("/login?next=https://evil.example/x",
                    data={"email": "web@test.huizhen", "password": PASSWORD, "csrf_token": _csrf(client)})
    assert r.headers["Location"] == "/"


def test_pages_redirect_anonymous_users_to_login(client):
    r = client.get("/")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login")


def test_session_cookie_is_httponly_and_samesite(client, make_user):
    make_user(email="web@test.huizhen")
    r = client.post("/login", data={"email": "web@test.huizhen", "password": PASSWORD, "csrf_token": _csrf(client)})
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_login_is_rate_limited(app, client, make_user):
    make_user(email="doc@test.huizhen")
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    codes = [client.post("/api/auth/token", json={"email": "doc@test.huizhen", "password": "bad"}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = client.post("/api/auth/token", json={"email": "doc@test.huizhen", "password": PASSWORD})
    assert r.status_code == 429
    assert r.json["error"] == "too many requests"


def test_doctors_behind_one_address_log_in_however_many_succeed_and_guesses_are_still_limited(app, make_user):
    # A hospital's NAT: every login comes from one address. Only failed attempts count against the limits.
    app.config.update(LOGIN_RATE_LIMIT="3 per minute", LOGIN_ACCOUNT_RATE_LIMIT="3 per minute")
    emails = [f"doc{n}@test.huizhen" for n in range(5)]
    for email in emails:
        make_user(email=email)
    for email in emails:  # five tokens and five page logins in one minute, from one address
        r = app.test_client().post("/api/auth/token", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, email
        browser = app.test_client()
        assert browser.post("/login", data={"email": email, "password": PASSWORD,
                                            "csrf_token": _csrf(browser)}).status_code == 302, email
    guesser = app.test_client()
    codes = [guesser.post("/api/auth/token", json={"email": emails[0], "password": "guess"}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert guesser.post("/api/auth/token", json={"email": emails[1], "password": PASSWORD}).status_code == 429


def test_bearer_token_works_from_a_client_that_has_a_page_session(client, make_user, token_for):
    # Visiting any page puts a CSRF token in the session cookie; the bearer token must still count.
    uid = make_user(email="web@test.huizhen")
    assert client.get("/login").status_code == 200
    r = client.get("/api/me", headers={"Authorization": f"Bearer {token_for(uid)}"})
    assert r.status_code == 200
    assert r.json["email"] == "web@test.huizhen"


@pytest.mark.parametrize("field", ["email", "password"])
def test_login_form_with_a_nul_character_is_a_wrong_login_not_a_500(client, make_user, field):
    # The form's raw email reached the query: PostgreSQL text cannot hold NUL (a DataError, a 500).
    make_user(email="web@test.huizhen")
    form = {"email": "web@test.huizhen", "password": PASSWORD, "csrf_token": _csrf(client)}
    form[field] += "\x00"
    r = client.post("/login", data=form)
    assert r.status_code == 401
    assert "邮箱或密码错误" in r.get_data(as_text=True)
    assert client.get("/").status_code == 302


def _log_in(client, email: str = "web@test.huizhen", **form) -> None:
    r = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client), **form})
    assert r.status_code == 302


def _log_out(client) -> None:
    assert client.post("/logout", data={"csrf_token": _csrf(client, "/")}).status_code == 302


def test_a_session_cookie_copied_before_logout_no_longer_works_after_it(client, make_user):
    # Logging out must end the session, not only drop the cookie from this browser: a copy taken
    # before (a shared ward computer, a proxy log, malware) would otherwise act as the doctor for weeks.
    make_user(email="web@test.huizhen")
    client.post("/login", data={"email": "web@test.huizhen", "password": PASSWORD, "csrf_token": _csrf(client)})
    copied = client.get_cookie("session").value
    assert client.get("/api/me").status_code == 200
    client.post("/logout", data={"csrf_token": _csrf(client, "/")})
    assert client.get("/api/me").status_code == 401
    client.set_cookie("session", copied)
    assert client.get("/api/me").status_code == 401


def test_a_remember_me_cookie_copied_before_logout_no_longer_works_after_it(app, client, make_user):
    # The remember-me cookie holds the same login id for a year: a copy of it opened a new session after logout.
    make_user(email="web@test.huizhen")
    _log_in(client, remember="1")
    remembered = client.get_cookie("remember_token").value
    fresh = app.test_client()
    fresh.set_cookie("remember_token", remembered)
    assert fresh.get("/api/me").status_code == 200  # the cookie alone logs in, as it should
    _log_out(client)
    stolen = app.test_client()
    stolen.set_cookie("remember_token", remembered)
    assert stolen.get("/api/me").status_code == 401


def test_logging_out_in_one_browser_leaves_the_users_other_logins(app, client, make_user):
    make_user(email="web@test.huizhen")
    phone = app.test_client()
    _log_in(client)
    _log_in(phone)
    _log_out(client)
    assert client.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 200
    _log_in(client)  # and logging in again is a new login
    assert client.get("/api/me").status_code == 200
    with app.app_context():  # the one that ended is dropped then: the table keeps the live ones
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginSession)) == 2


def test_ended_and_expired_logins_are_dropped_at_anyones_next_login(app, client, make_user):
    # A user who logs out and never comes back left their ended login (and its time) in the table for good.
    make_user(email="gone@test.huizhen")
    make_user(email="stale@test.huizhen")
    make_user(email="web@test.huizhen")
    stale = app.test_client()
    _log_in(client, email="gone@test.huizhen")
    _log_out(client)
    _log_in(stale, email="stale@test.huizhen")
    with app.app_context():
        db.session.execute(sa.update(LoginSession).where(LoginSession.ended_at.is_(None)).values(
            created_at=utcnow() - timedelta(days=app.config["LOGIN_SESSION_DAYS"], minutes=1)))
        db.session.commit()
    _log_in(app.test_client(), email="web@test.huizhen")
    with app.app_context():
        users = db.session.scalars(sa.select(User.email).join(LoginSession, LoginSession.user_id == User.id))
        assert list(users) == ["web@test.huizhen"]


def test_a_cookie_naming_only_a_user_id_opens_no_session(client, make_user):
    # The form of the session before login sessions were recorded (a bare user id, signed): it logs in
    # nobody, so such cookies, copied or not, stopped working with the migration.
    uid = make_user(email="web@test.huizhen")
    _log_in(client)  # a real session (the strong session protection's identifier in it), then its id rewritten
    with client.session_transaction() as session:
        assert session["_user_id"].startswith(f"{uid}:")
        session["_user_id"] = str(uid)
    assert client.get("/api/me").status_code == 401
    for forged in (f"{uid}:", f"{uid}:not-a-token", f":{uid}", "x:y"):
        with client.session_transaction() as session:
            session["_user_id"] = forged
        assert client.get("/api/me").status_code == 401, forged


def test_a_login_lasts_login_session_days_at_most_whatever_its_cookie_says(app, client, make_user):
    # The remember-me cookie's expiry is the browser's to keep; a copy replayed later is refused here.
    days = app.config["LOGIN_SESSION_DAYS"]
    make_user(email="web@test.huizhen")
    r = client.post("/login", data={"email": "web@test.huizhen", "password": PASSWORD, "remember": "1",
                                    "csrf_token": _csrf(client)})
    remember = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("remember_token="))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", remember).group(1)).replace(tzinfo=None)
    assert abs(expires - (utcnow() + timedelta(days=days))) < timedelta(minutes=5)
    assert client.get("/api/me").status_code == 200
    with app.app_context():
        db.session.execute(sa.update(LoginSession).values(created_at=utcnow() - timedelta(days=days, minutes=1)))
        db.session.commit()
    assert client.get("/api/me").status_code == 401
