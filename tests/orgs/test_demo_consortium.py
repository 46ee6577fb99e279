"""seed-demo builds the contract's demo consortium, idempotently, and its routing works."""

from app.accounts.demo import DEMO_PASSWORD


def token(client, email):
    r = client.post("/api/auth/token", json={"email": email, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.json
    return {"Authorization": f"Bearer {r.json['token']}"}


def test_seed_demo_builds_the_consortium_once(runner, client):
    for _ in range(2):
        result = runner.invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
    assert "(0 new orgs)" in result.output
    admin = token(client, "consortium@demo.huizhen")
    consortia = client.get("/api/orgs?kind=consortium", headers=admin).json["items"]
    assert [c["name"] for c in consortia] == ["湘江妇儿医联体"]
    consortium = consortia[0]
    assert consortium["form"] == "1-n"
    sides = {i["name"]: i["side"] for i in consortium["institutions"]}
    assert sides == {"湘江大学附属第一医院": "provider", "云溪县人民医院": "requester", "湖南省妇幼保健院": "requester"}
    assert [m["user"]["email"] for m in consortium["members"] if m["role"] == "admin"] == ["consortium@demo.huizhen"]
    pool = client.get(f"/api/orgs/{consortium['children'][0]['id']}", headers=admin).json
    assert (pool["kind"], pool["name"], pool["parent_id"]) == ("doctor_group", "妇科会诊组", consortium["id"])
    roles = {m["user"]["email"]: m["role"] for m in pool["members"]}
    assert roles == {"coordinator@demo.huizhen": "coordinator", "gyn@demo.huizhen": "member",
                     "gyn2@demo.huizhen": "member"}
    rules = client.get(f"/api/orgs/{consortium['id']}/rules", headers=admin).json["items"]
    assert [(r["specialty"], r["target_org"]["id"]) for r in rules] == [("gynecology", pool["id"])]
    # The outsider's community centre is not a member.
    outsider = token(client, "outsider@demo.huizhen")
    assert client.get(f"/api/orgs/{consortium['id']}", headers=outsider).status_code == 404
    # gp@ shares a gynecology case to the consortium; coordinator@ sees it in the queue with gyn@ and gyn2@.
    gp = token(client, "gp@demo.huizhen")
    case = client.post("/api/cases", headers=gp, json={"title": "盆腔包块", "clinical_question": "良恶性？",
                                                        "specialty": "gynecology"}).json
    shared = client.post(f"/api/cases/{case['id']}/share", headers=gp, json={"org_id": consortium["id"]})
    assert shared.json["pool"] == {"id": pool["id"], "name": "妇科会诊组"}
    queue = client.get(f"/api/orgs/{pool['id']}/queue", headers=token(client, "coordinator@demo.huizhen")).json
    assert {s["specialist"]["email"] for s in queue["items"][0]["suggestions"]} == {"gyn@demo.huizhen",
                                                                                    "gyn2@demo.huizhen"}
