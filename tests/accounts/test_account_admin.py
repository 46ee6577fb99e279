"""What a platform administrator's deactivation, reactivation and role changes do to an account."""

import threading

import pytest

from tests.accounts.test_auth import _log_in
from tests.conftest import ApiClient


def test_a_reactivated_account_gets_none_of_its_old_tokens_or_logins_back(app, api_as, make_user, token_for):
    # The tokens and logins were refused while the account was inactive, and came back with it.
    admin = api_as(make_user(role="admin"))
    uid = make_user(email="web@test.huizhen")
    token = token_for(uid)
    browser = app.test_client()
    _log_in(browser)
    assert browser.get("/api/me").status_code == 200
    me = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/me", headers=me).status_code == 200  # and now cached
    assert admin.patch(f"/api/admin/users/{uid}", json={"active": False}).status_code == 200
    assert admin.patch(f"/api/admin/users/{uid}", json={"active": True}).status_code == 200
    assert app.test_client().get("/api/me", headers=me).status_code == 401
    assert browser.get("/api/me").status_code == 401
    _log_in(browser)  # a new login works, as does a new token
    assert browser.get("/api/me").status_code == 200
    assert api_as(uid).get("/api/me").status_code == 200


@pytest.mark.parametrize("active", ["no", "false", 0, 1, "yes", "true"])
def test_an_account_is_deactivated_only_by_a_json_boolean(api_as, make_user, active):
    admin = api_as(make_user(role="admin"))
    uid = make_user()
    r = admin.patch(f"/api/admin/users/{uid}", json={"active": active})
    assert r.status_code == 400, r.json
    assert "active" in str(r.json)
    assert api_as(uid).get("/api/me").status_code == 200  # still active


@pytest.mark.parametrize("change", [{"active": False}, {"role": "doctor"}], ids=["deactivate", "demote"])
def test_the_last_active_administrator_can_be_neither_deactivated_nor_demoted(api_as, make_user, change):
    first = make_user(role="admin")
    admin = api_as(first)
    r = admin.patch(f"/api/admin/users/{first}", json=change)
    assert r.status_code == 409
    assert r.json["error"] == "the last active platform administrator cannot be deactivated or demoted"
    assert admin.get("/api/admin/users").status_code == 200  # still an administrator
    second = make_user(role="admin")
    assert admin.patch(f"/api/admin/users/{first}", json=change).status_code == 200  # another one remains
    assert api_as(second).patch(f"/api/admin/users/{second}", json=change).status_code == 409


def test_two_administrators_demoting_each_other_at_once_leave_one(app, make_user, token_for):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("row-level concurrency is a PostgreSQL property; CI's PostgreSQL pass runs this")
    a, b = make_user(role="admin"), make_user(role="admin")
    clients = {a: ApiClient(app.test_client(), token_for(a)), b: ApiClient(app.test_client(), token_for(b))}
    barrier = threading.Barrier(2)
    codes = {}

    def demote(actor: int, target: int) -> None:
        barrier.wait()
        codes[actor] = clients[actor].patch(f"/api/admin/users/{target}", json={"role": "doctor"}).status_code

    threads = [threading.Thread(target=demote, args=pair) for pair in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes.values()) in ([200, 403], [200, 409])  # the second is no admin any more, or the last
    roles = {u["id"]: u["role"] for u in clients[a if codes[a] == 200 else b].get("/api/admin/users").json["items"]}
    assert sorted(roles[i] for i in (a, b)) == ["admin", "doctor"]
