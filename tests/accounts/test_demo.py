"""seed-demo: the contract's demo accounts exist, can log in, and seeding twice is harmless."""

import pytest

from app.accounts.demo import DEMO_PASSWORD

CONTRACT_ACCOUNTS = {
    "gp@demo.huizhen": "general_practice",
    "gyn@demo.huizhen": "gynecology",
    "radiology@demo.huizhen": "radiology",
    "pathology@demo.huizhen": "pathology",
    "oncology@demo.huizhen": "oncology",
    "outsider@demo.huizhen": None,
    "admin@demo.huizhen": None,
}


@pytest.fixture
def seeded(runner):
    first = runner.invoke(args=["seed-demo"])
    second = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "0 new" in second.output
    return runner


@pytest.mark.parametrize(("email", "specialty"), CONTRACT_ACCOUNTS.items())
def test_demo_accounts_log_in(seeded, client, email, specialty):
    r = client.post("/api/auth/token", json={"email": email, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.json
    me = client.get("/api/me", headers={"Authorization": f"Bearer {r.json['token']}"}).json
    assert me["email"] == email
    assert set(me["institution"]) >= {"id", "name"}
    if specialty:
        assert me["specialty"] == specialty


def test_demo_roles_and_hospitals(seeded, client):
    def me(email):
        token = client.post("/api/auth/token", json={"email": email, "password": DEMO_PASSWORD}).json["token"]
        return client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json

    assert me("admin@demo.huizhen")["role"] == "admin"
    assert me("gp@demo.huizhen")["institution"]["level"] in {"county", "provincial"}
    for email in ("gyn@demo.huizhen", "radiology@demo.huizhen", "pathology@demo.huizhen", "oncology@demo.huizhen"):
        assert me(email)["institution"]["level"] == "tertiary"


def test_demo_directory_has_several_specialists_per_specialty(seeded, client):
    token = client.post("/api/auth/token", json={"email": "gp@demo.huizhen", "password": DEMO_PASSWORD}).json["token"]
    for specialty in ("gynecology", "radiology", "pathology", "oncology"):
        items = client.get(f"/api/specialists?specialty={specialty}",
                           headers={"Authorization": f"Bearer {token}"}).json["items"]
        assert len(items) >= 2
        assert items[0]["institution"]["level"] == "tertiary"
