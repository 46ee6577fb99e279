"""The teaching collection: propose after close, one-tap consent, read-only copy, images, unpublish."""

import json
import re

import pytest

from tests.conftest import PASSWORD
from tests.imaging.dicom_samples import sample, upload
from tests.support.permissions import assert_require_ids_agrees


@pytest.fixture
def closed_case(make_case_in_progress, make_user, api_as):
    """A closed gynecology case with a CT, a report and a signed opinion; its consultant is in a pool
    under a consortium; a colleague in the pool, a doctor of another consortium, an org admin."""
    case_id, ids = make_case_in_progress(
        users={"radiologist": {"specialty": "radiology"}, "colleague": {"specialty": "gynecology"},
               "outsider": {"specialty": "gynecology"}, "org_admin": {}},
        participants={"radiologist": "radiology"},
        title="左侧卵巢囊肿伴实性成分", clinical_question="请会诊：良性还是恶性？", specialty="gynecology")
    ids["platform_admin"] = make_user(role="admin")
    admin, owner, consultant = api_as(ids["platform_admin"]), api_as(ids["owner"]), api_as(ids["consultant"])
    consortium = admin.post("/api/orgs", json={"kind": "consortium", "name": "湘江医联体"}).json["id"]
    pool = admin.post("/api/orgs", json={"kind": "doctor_group", "name": "妇科会诊组",
                                         "parent_id": consortium}).json["id"]
    other = admin.post("/api/orgs", json={"kind": "doctor_group", "name": "别的组"}).json["id"]
    for org, who, role in ((pool, "consultant", "member"), (pool, "colleague", "member"),
                           (consortium, "consultant", "member"), (consortium, "org_admin", "admin"),
                           (other, "outsider", "member")):
        assert admin.post(f"/api/orgs/{org}/members", json={"user_id": ids[who], "role": role}).status_code == 201
    r = owner.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                   content_type="multipart/form-data")
    assert r.json["accepted"]
    api_as(ids["radiologist"]).post(f"/api/cases/{case_id}/reports", json={"body": "CT 示附件区囊实性包块"})
    r = consultant.post(f"/api/cases/{case_id}/opinion",
                        json={"diagnosis": "卵巢交界性肿瘤可能", "recommendations": "腹腔镜手术，术中冰冻"})
    assert r.status_code == 200, r.json
    ids.update(case=case_id, pool=pool, other=other, consortium=consortium)
    return ids


def _close(api_as, ids):
    r = api_as(ids["owner"]).post(f"/api/cases/{ids['case']}/close", json={"rating": 5})
    assert r.status_code == 200, r.json


def _propose(api_as, ids, **extra):
    body = {"org_id": ids["pool"], "note": "交界性肿瘤的影像特点：实性成分与血流",
            "tags": {"specialty": "gynecology", "keywords": ["交界性肿瘤"], "difficulty": "advanced"}, **extra}
    return api_as(ids["consultant"]).post(f"/api/cases/{ids['case']}/teaching", json=body)


def image_routes(api, case_id):
    instances = api.get(f"/api/cases/{case_id}/instances")
    if instances.status_code != 200:
        return [instances.status_code]
    sop = instances.json["items"][0]["sop_instance_uid"]
    return [200, api.get(f"/api/cases/{case_id}/instances/{sop}/rendered").status_code]


def test_only_after_close_only_the_consultant_only_to_their_orgs(api_as, closed_case):
    ids = closed_case
    assert _propose(api_as, ids).status_code == 409  # answered, not closed yet
    _close(api_as, ids)
    assert _propose(api_as, ids, org_id=ids["other"]).status_code == 400
    r = api_as(ids["owner"]).post(f"/api/cases/{ids['case']}/teaching", json={"org_id": ids["pool"]})
    assert r.status_code == 403
    assert api_as(ids["outsider"]).post(f"/api/cases/{ids['case']}/teaching",
                                        json={"org_id": ids["other"]}).status_code == 404
    r = _propose(api_as, ids)
    assert r.status_code == 201, r.json
    assert r.json["state"] == "proposed"
    assert _propose(api_as, ids).status_code == 409


def test_consent_publishes_a_read_only_copy_with_images_and_no_names(api_as, closed_case, app):
    ids = closed_case
    _close(api_as, ids)
    tid = _propose(api_as, ids).json["id"]
    colleague, owner = api_as(ids["colleague"]), api_as(ids["owner"])
    # Before consent: not in the collection, no images.
    assert colleague.get("/api/teaching").json["items"] == []
    assert colleague.get(f"/api/teaching/{tid}").status_code == 404
    assert image_routes(colleague, ids["case"]) == [404]
    assert [t["id"] for t in owner.get("/api/teaching/pending").json["items"]] == [tid]
    assert api_as(ids["consultant"]).post(f"/api/teaching/{tid}/consent", json={"agree": True}).status_code == 403
    r = owner.post(f"/api/teaching/{tid}/consent", json={"agree": True, "show_hospital": False})
    assert r.json["state"] == "published"
    assert owner.post(f"/api/teaching/{tid}/consent", json={"agree": False}).status_code == 409
    # Members of the pool, and the consortium's admin, browse and search it.
    for who in ("colleague", "org_admin"):
        assert [t["id"] for t in api_as(ids[who]).get("/api/teaching").json["items"]] == [tid], who
    for q in ("卵巢囊肿", "交界性", "冰冻 腹腔镜", "实性成分 血流"):
        assert [t["id"] for t in colleague.get("/api/teaching", query_string={"q": q}).json["items"]] == [tid], q
    assert colleague.get("/api/teaching", query_string={"q": "甲状腺"}).json["items"] == []
    assert colleague.get("/api/teaching", query_string={"specialty": "cardiology"}).json["items"] == []
    item = colleague.get(f"/api/teaching/{tid}").json
    assert item["question"] == "请会诊：良性还是恶性？"
    assert item["opinion"]["diagnosis"] == "卵巢交界性肿瘤可能"
    assert item["reports"] == [{"discipline": "radiology", "body": "CT 示附件区囊实性包块"}]
    assert item["tags"] == {"specialty": "gynecology", "keywords": ["交界性肿瘤"], "difficulty": "advanced"}
    assert item["hospital"] is None
    text = json.dumps(item, ensure_ascii=False)
    me = {u: api_as(ids[u]).get("/api/me").json for u in ("owner", "consultant", "radiologist")}
    for person in me.values():
        assert person["name"] not in text
        assert person["institution"]["name"] not in text
    # The images through the same routes; nothing else of the case.
    assert image_routes(colleague, ids["case"]) == [200, 200]
    assert_require_ids_agrees(app, ids["case"], {w: ids[w] for w in ("colleague", "outsider", "owner", "consultant")})
    for path in ("", "/messages", "/audit", "/timeline", "/participants", "/opinion"):
        assert colleague.get(f"/api/cases/{ids['case']}{path}").status_code == 403, path
    assert ids["case"] not in [c["id"] for c in colleague.get("/api/cases").json["items"]]
    # Someone outside the pool and its consortium: nothing.
    outsider = api_as(ids["outsider"])
    assert outsider.get("/api/teaching").json["items"] == []
    assert outsider.get(f"/api/teaching/{tid}").status_code == 404
    assert image_routes(outsider, ids["case"]) == [404]
    assert api_as(ids["platform_admin"]).get(f"/api/teaching/{tid}").status_code == 404
    email = colleague.get("/api/me").json["email"]
    with app.test_client() as browser:  # the page and its read-only viewer for a reader
        html = browser.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        browser.post("/login", data={"email": email, "password": PASSWORD,
                                     "csrf_token": csrf})
        assert "卵巢" in browser.get("/teaching", query_string={"q": "卵巢囊肿"}).get_data(as_text=True)
        page = browser.get(f"/teaching/{tid}/viewer")
        assert page.status_code == 200
        assert 'id="room"' not in page.get_data(as_text=True)


def test_refusal_keeps_it_out_and_hospital_shown_only_when_agreed(api_as, closed_case):
    ids = closed_case
    _close(api_as, ids)
    tid = _propose(api_as, ids).json["id"]
    owner = api_as(ids["owner"])
    assert owner.post(f"/api/teaching/{tid}/consent", json={"agree": False}).json["state"] == "refused"
    assert api_as(ids["colleague"]).get("/api/teaching").json["items"] == []
    assert image_routes(api_as(ids["colleague"]), ids["case"]) == [404]
    tid2 = _propose(api_as, ids, org_id=ids["consortium"]).json["id"]
    r = owner.post(f"/api/teaching/{tid2}/consent", json={"agree": True, "show_hospital": True})
    assert r.json["hospital"] == owner.get("/api/me").json["institution"]["name"]
    # The consortium's collection: its admin reads it; the pool colleague is no member of it.
    assert [t["id"] for t in api_as(ids["org_admin"]).get("/api/teaching").json["items"]] == [tid2]


@pytest.mark.parametrize("remover", ["consultant", "owner", "org_admin"])
def test_unpublishing_removes_it_at_once(api_as, closed_case, remover):
    ids = closed_case
    _close(api_as, ids)
    tid = _propose(api_as, ids).json["id"]
    api_as(ids["owner"]).post(f"/api/teaching/{tid}/consent", json={"agree": True})
    colleague = api_as(ids["colleague"])
    assert image_routes(colleague, ids["case"]) == [200, 200]
    assert colleague.delete(f"/api/teaching/{tid}").status_code == 403
    assert api_as(ids[remover]).delete(f"/api/teaching/{tid}").status_code == 204
    assert colleague.get("/api/teaching").json["items"] == []
    assert colleague.get(f"/api/teaching/{tid}").status_code == 404
    assert image_routes(colleague, ids["case"]) == [404]


@pytest.fixture
def in_step(monkeypatch):
    """Make the next two teaching-case look-ups (service.get) wait for each other: two requests then
    both read the proposal before either writes."""
    import itertools
    import threading
    import time

    from app.teaching import service

    both_read, calls, get = threading.Barrier(2), itertools.count(), service.get
    then_wait: dict[int, float] = {}  # user id -> seconds that user's request waits once both have read

    def get_in_step(**kw):
        found = get(**kw)
        if next(calls) < 2:  # the racing two; later look-ups go straight through
            both_read.wait(5)
            time.sleep(then_wait.get(kw["user"].id, 0))
        return found

    monkeypatch.setattr(service, "get", get_in_step)
    return then_wait


def test_agree_and_refuse_at_once_one_wins_and_the_other_is_told(app, api_as, closed_case, token_for, in_step):
    """Two tabs, or a change of mind mid-request: one answer stands and the other is a 409, so the
    referring doctor is never told "refused" while the case is published (or the reverse)."""
    from tests.support.live import ThreadServer, race

    ids = closed_case
    _close(api_as, ids)
    tid = _propose(api_as, ids).json["id"]
    token = token_for(ids["owner"])
    with ThreadServer(app) as server:
        results = race(server, {agree: (token, "POST", f"/api/teaching/{tid}/consent", {"agree": agree})
                                for agree in (True, False)})
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {a: (r.status_code, r.text[:200]) for a, r in results.items()}
    winner = next(r.json() for r in results.values() if r.status_code == 200)
    stored = api_as(ids["owner"]).get(f"/api/teaching/{tid}").json
    assert (stored["state"], stored["decided_at"]) == (winner["state"], winner["decided_at"])
    listed = [t["id"] for t in api_as(ids["colleague"]).get("/api/teaching").json["items"]]
    assert listed == ([tid] if winner["state"] == "published" else [])


@pytest.mark.parametrize("first", ["remove", "consent"])
def test_consent_racing_removal_is_no_500(app, api_as, closed_case, token_for, in_step, first, monkeypatch):
    """The referring doctor agrees while the consultant removes the proposal: whichever is committed
    first, the other is answered plainly (the consent a 404 once it is gone), never a 500."""
    import time

    from app.teaching import routes
    from tests.support.live import ThreadServer, race

    ids = closed_case
    _close(api_as, ids)
    tid = _propose(api_as, ids).json["id"]
    if first == "remove":
        in_step[ids["owner"]] = 0.3
    else:
        # The removal waits on the consent's row lock, and goes through the moment the consent commits:
        # the consent's answer must not be read back from a row that is by then gone.
        in_step[ids["consultant"]] = 0.1
        as_json = routes.teaching_json
        monkeypatch.setattr(routes, "teaching_json", lambda t: time.sleep(0.3) or as_json(t))
    with ThreadServer(app) as server:
        results = race(server, {
            "consent": (token_for(ids["owner"]), "POST", f"/api/teaching/{tid}/consent", {"agree": True}),
            "remove": (token_for(ids["consultant"]), "DELETE", f"/api/teaching/{tid}", None)})
    answers = {n: r.status_code for n, r in results.items()}
    assert answers == {"remove": 204, "consent": 404 if first == "remove" else 200}, \
        {n: r.text[:200] for n, r in results.items()}
    if first == "consent":
        assert results["consent"].json()["state"] == "published"
    assert api_as(ids["owner"]).get(f"/api/teaching/{tid}").status_code == 404
    assert api_as(ids["colleague"]).get("/api/teaching").json["items"] == []


@pytest.mark.parametrize("body", [{"agree": "yes"}, {"agree": 1}, {"agree": "true"}, {"agree": None},
                                  {"agree": True, "show_hospital": "1"}, {"agree": True, "show_hospital": []}])
def test_consent_is_a_json_boolean(api_as, closed_case, body):
    """Publishing a patient's case takes a real ``true``: a string or a number is a 400 naming the field."""
    ids = closed_case
    _close(api_as, ids)
    tid = _propose(api_as, ids).json["id"]
    owner = api_as(ids["owner"])
    r = owner.post(f"/api/teaching/{tid}/consent", json=body)
    assert r.status_code == 400, r.json
    assert r.json["detail"][0]["field"] in body
    assert owner.get(f"/api/teaching/{tid}").json["state"] == "proposed"
