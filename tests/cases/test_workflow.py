"""The state machine: every transition not in the table is a 409 that changes nothing."""

import hashlib
import json
import re
import threading

import pytest
import requests
import sqlalchemy as sa

from app.cases.service import canonical
from app.cases.workflow import TRANSITIONS
from app.extensions import db
from tests.conftest import ApiClient
from tests.support.live import ThreadServer

# How to reach each status from a fresh draft, as (who, method, path, body) steps.
PATHS = {
    "draft": [],
    "submitted": [("owner", "share")],
    "accepted": [("owner", "share"), ("consultant", "accept")],
    "declined": [("owner", "share"), ("consultant", "decline")],
    "info_requested": [("owner", "share"), ("consultant", "accept"), ("consultant", "ask")],
    "answered": [("owner", "share"), ("consultant", "accept"), ("consultant", "sign")],
    "closed": [("owner", "share"), ("consultant", "accept"), ("consultant", "sign"), ("owner", "close")],
    "withdrawn": [("owner", "withdraw")],
}
# action: (who may do it, path, body)
ACTIONS = {
    "share": ("owner", "share", None),
    "accept": ("consultant", "accept", None),
    "decline": ("consultant", "decline", {"reason": "超出专业范围"}),
    "ask": ("consultant", "questions", {"question": "请补充病史"}),
    "answer": ("owner", "answers", {"answer": "已补充"}),
    "sign": ("consultant", "opinion", {"diagnosis": "良性", "recommendations": "随访"}),
    "close": ("owner", "close", {"rating": 4}),
    "withdraw": ("owner", "withdraw", {"reason": "患者转院"}),
}
TRANSITION_NAME = {"sign": "sign_opinion"}


@pytest.fixture
def people(make_user, api_as):
    owner, consultant = make_user(), make_user(specialty="gynecology")
    return {"owner": api_as(owner), "consultant": api_as(consultant), "ids": (owner, consultant)}


def run(people, case_id, action):
    who, path, body = ACTIONS[action]
    api = people[who]
    if action == "share":
        body = {"specialist_id": people["ids"][1]}
    return api.post(f"/api/cases/{case_id}/{path}", json=body or {})


def case_in(people, make_case, status):
    case_id = make_case(people["ids"][0])
    for _, action in PATHS[status]:
        r = run(people, case_id, action)
        assert r.status_code == 200, (status, action, r.json)
    return case_id


def test_the_table_is_what_the_issue_specifies():
    table = {t.action.value: (sorted(t.sources), t.target) for t in TRANSITIONS.values()}
    assert table == {
        "share": (["declined", "draft"], "submitted"),
        "accept": (["submitted"], "accepted"),
        "decline": (["submitted"], "declined"),
        "ask": (["accepted"], "info_requested"),
        "answer": (["info_requested"], "accepted"),
        "sign_opinion": (["accepted"], "answered"),
        "close": (["answered"], "closed"),
        "withdraw": (["draft", "submitted"], "withdrawn"),
        # the pool path (issue 13): assigned by a coordinator, rerouted, back to the queue on decline
        "assign": (["submitted"], "submitted"),
        "reroute": (["submitted"], "submitted"),
        "return_to_pool": (["submitted"], "submitted"),
    }


VALID = {(s, a) for a, t in ((a, TRANSITIONS[next(k for k in TRANSITIONS if k.value == TRANSITION_NAME.get(a, a))])
                             for a in ACTIONS) for s in t.sources}
INVALID = sorted((s, a) for s in PATHS for a in ACTIONS if (s, a) not in VALID)


@pytest.mark.parametrize(("status", "action"), INVALID)
def test_invalid_transitions_are_409_and_change_nothing(people, make_case, status, action):
    case_id = case_in(people, make_case, status)
    before = people["owner"].get(f"/api/cases/{case_id}").json
    r = run(people, case_id, action)
    if r.status_code == 404:
        # The would-be consultant of a draft, withdrawn-before-sharing or declined case is not on it.
        assert status in ("draft", "withdrawn", "declined")
        assert ACTIONS[action][0] == "consultant"
    else:
        assert r.status_code == 409, (status, action, r.json)
        assert r.json["error"] == "invalid transition"
        assert r.json["detail"]["status"] == status
        assert isinstance(r.json["detail"]["allowed"], list)
    after = people["owner"].get(f"/api/cases/{case_id}").json
    assert after["status"] == before["status"]
    assert after["opinion"] == before["opinion"]
    timeline = people["owner"].get(f"/api/cases/{case_id}/timeline").json["items"]
    assert len(timeline) == 1 + len(PATHS[status])


@pytest.mark.parametrize(("status", "action"), sorted(VALID))
def test_valid_transitions_reach_their_target(people, make_case, status, action):
    case_id = case_in(people, make_case, status)
    r = run(people, case_id, action)
    assert r.status_code == 200, r.json
    name = TRANSITION_NAME.get(action, action)
    target = next(t.target for t in TRANSITIONS.values() if t.action.value == name)
    assert r.json["status"] == target
    last = people["owner"].get(f"/api/cases/{case_id}/timeline").json["items"][-1]
    assert (last["action"], last["from"], last["to"]) == (name, status, target)


def test_redeclined_case_can_be_shared_with_someone_else(people, make_case, make_user, api_as):
    case_id = case_in(people, make_case, "declined")
    other = make_user(specialty="gynecology")
    # The specialist who declined no longer sees the case.
    assert people["consultant"].get(f"/api/cases/{case_id}").status_code == 404
    r = people["owner"].post(f"/api/cases/{case_id}/share", json={"specialist_id": other})
    assert r.json["status"] == "submitted"
    assert r.json["consultant"]["id"] == other
    assert api_as(other).post(f"/api/cases/{case_id}/accept").json["status"] == "accepted"


def test_a_case_withdrawn_after_sharing_is_no_longer_the_specialists(people, make_case):
    """Shared with the wrong doctor and withdrawn at once: they never took it, and keep nothing of it
    (before: the case, its images and attachments, chat, its audit log and share links, for good)."""
    owner, specialist = people["owner"], people["consultant"]
    case_id = case_in(people, make_case, "submitted")
    link = specialist.post(f"/api/cases/{case_id}/links", json={"scope": "read", "expires_in_hours": 24})
    assert link.status_code == 201, link.json
    assert specialist.get(link.json["dicomweb_url"] + "/studies").status_code == 200
    r = owner.post(f"/api/cases/{case_id}/withdraw", json={"reason": "发错了医生"})
    assert r.status_code == 200
    assert (r.json["status"], r.json["consultant"]) == ("withdrawn", None)
    for path in ("", "/timeline", "/participants", "/audit", "/links"):
        assert specialist.get(f"/api/cases/{case_id}{path}").status_code == 404, path
    assert specialist.get("/api/cases").json["items"] == []
    assert specialist.get(link.json["dicomweb_url"] + "/studies").status_code == 404  # their link died too
    assert [n["kind"] for n in specialist.get("/api/notifications").json["items"]] == ["withdrawn", "shared"]
    # The owner's record keeps who it was sent to.
    share = [e for e in owner.get(f"/api/cases/{case_id}/timeline").json["items"] if e["action"] == "share"]
    assert share[0]["data"]["specialist_id"] == people["ids"][1]


def test_share_with_unknown_or_self_is_400(people, make_case):
    case_id = make_case(people["ids"][0])
    r = people["owner"].post(f"/api/cases/{case_id}/share", json={"specialist_id": 999999})
    assert (r.status_code, r.json["error"]) == (400, "unknown specialist")
    r = people["owner"].post(f"/api/cases/{case_id}/share", json={"specialist_id": people["ids"][0]})
    assert (r.status_code, r.json["error"]) == (400, "you cannot share a case with yourself")


def test_signing_needs_diagnosis_and_recommendations(people, make_case):
    case_id = case_in(people, make_case, "accepted")
    r = people["consultant"].post(f"/api/cases/{case_id}/opinion", json={"diagnosis": "良性"})
    assert r.status_code == 400
    assert r.json["detail"] == {"missing": ["recommendations"]}
    assert people["owner"].get(f"/api/cases/{case_id}").json["status"] == "accepted"


def test_amendment_keeps_the_signed_version(people, make_case):
    case_id = case_in(people, make_case, "answered")
    consultant = people["consultant"]
    first = consultant.get(f"/api/cases/{case_id}/opinion").json["versions"]
    assert [v["version"] for v in first] == [1]
    r = consultant.post(f"/api/cases/{case_id}/opinion/amendments",
                        json={"reason": "病理会诊结果更新", "diagnosis": "交界性肿瘤"})
    assert r.status_code == 201
    versions = consultant.get(f"/api/cases/{case_id}/opinion").json["versions"]
    assert [(v["version"], v["diagnosis"]) for v in versions] == [(1, "良性"), (2, "交界性肿瘤")]
    assert versions[0]["sha256"] == first[0]["sha256"]
    assert versions[1]["amendment_reason"] == "病理会诊结果更新"
    assert r.json["opinion"]["version"] == 2
    assert people["owner"].get(f"/api/cases/{case_id}/opinion.pdf?version=1").status_code == 200
    assert people["owner"].get(f"/api/cases/{case_id}/opinion.pdf?version=9").status_code == 404
    r = consultant.post(f"/api/cases/{case_id}/opinion/amendments", json={"diagnosis": "x"})
    assert r.status_code == 400  # a reason is required


def test_draft_is_the_consultants_alone(people, make_case, make_user, api_as):
    case_id = case_in(people, make_case, "accepted")
    colleague = make_user(specialty="radiology")
    people["consultant"].post(f"/api/cases/{case_id}/participants", json={"user_id": colleague,
                                                                            "discipline": "radiology"})
    people["consultant"].put(f"/api/cases/{case_id}/opinion/draft", json={"diagnosis": "草稿"})
    assert people["consultant"].get(f"/api/cases/{case_id}/opinion").json["draft"]["diagnosis"] == "草稿"
    assert api_as(colleague).get(f"/api/cases/{case_id}/opinion").json["draft"] is None
    assert people["owner"].get(f"/api/cases/{case_id}/opinion").json == {"versions": [], "draft": None}


def test_each_differential_diagnosis_is_bounded_like_every_other_text(people, make_case):
    # Twenty items of any length fitted the list's bound: a signed opinion (and its PDF) of megabytes.
    case_id = case_in(people, make_case, "accepted")
    r = people["consultant"].put(f"/api/cases/{case_id}/opinion/draft", json={"differential": ["甲" * 1001]})
    assert r.status_code == 400
    assert "differential" in str(r.json)
    ok = people["consultant"].put(f"/api/cases/{case_id}/opinion/draft", json={"differential": ["甲" * 1000]})
    assert ok.status_code == 200


def test_concurrent_accepts_leave_one_winner(app, people, make_case, token_for):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("row-level concurrency is a PostgreSQL property; CI's PostgreSQL pass runs this")
    case_id = case_in(people, make_case, "submitted")
    consultant_id = people["ids"][1]
    tokens = [token_for(consultant_id) for _ in range(4)]
    barrier = threading.Barrier(len(tokens))
    codes = []

    def accept(token):
        api = ApiClient(app.test_client(), token)
        barrier.wait()
        codes.append(api.post(f"/api/cases/{case_id}/accept").status_code)

    threads = [threading.Thread(target=accept, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [200, 409, 409, 409]
    timeline = people["owner"].get(f"/api/cases/{case_id}/timeline").json["items"]
    assert [e["action"] for e in timeline].count("accept") == 1


WRITES_OPINION = re.compile(r"\s*(INSERT\s+INTO|UPDATE)\s+opinions\b", re.IGNORECASE)


def _just_before_writing_the_opinion(app, make_request):
    """Run ``make_request`` (another request, its own thread and connection) right before the next
    request of this thread writes to the opinions table; wait for it at most a couple of seconds
    (a correct server may hold it back until the first request commits). Return (its answers,
    whether it ran, and a function to call once the first request is done)."""
    answers, me, fired = [], threading.get_ident(), []

    def other():
        answers.append(make_request())

    def before_execute(conn, cursor, statement, *_args):
        if fired or threading.get_ident() != me or not WRITES_OPINION.match(statement):
            return
        fired.append(threading.Thread(target=other))
        fired[0].start()
        fired[0].join(2)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before_execute)
    return answers, fired, lambda: (sa.event.remove(engine, "before_cursor_execute", before_execute),
                                    fired and fired[0].join(30))


OPINION_META = {"version", "state", "signed_by", "signed_at", "sha256", "amendment_reason", "pdf"}


def _signed_intact(api, case_id):
    versions = api.get(f"/api/cases/{case_id}/opinion").json["versions"]
    for v in versions:
        content = {k: x for k, x in v.items() if k not in OPINION_META}
        assert v["sha256"] == hashlib.sha256(canonical(content).encode()).hexdigest(), v
    return versions


def test_a_draft_saved_while_the_opinion_is_signed_never_changes_the_signed_version(app, people, make_case):
    case_id = case_in(people, make_case, "accepted")
    consultant = people["consultant"]
    assert consultant.put(f"/api/cases/{case_id}/opinion/draft", json={"diagnosis": "良性"}).status_code == 200
    token = consultant.token

    def sign():
        return ApiClient(app.test_client(), token).post(f"/api/cases/{case_id}/opinion",
                                                         json={"recommendations": "随访"}).status_code

    answers, fired, done = _just_before_writing_the_opinion(app, sign)
    try:  # the draft save (another tab) is about to write the draft it read when the signature lands
        r = consultant.put(f"/api/cases/{case_id}/opinion/draft", json={"diagnosis": "恶性可能"})
    finally:
        done()
    assert fired
    assert answers == [200]
    assert r.status_code in (200, 409), r.json
    # Signed once, and the signed content is what its hash covers (before: the late save rewrote it).
    assert [v["version"] for v in _signed_intact(consultant, case_id)] == [1]


def test_two_amendments_at_once_are_two_versions_not_a_500(app, people, make_case):
    case_id = case_in(people, make_case, "answered")
    consultant = people["consultant"]
    token = consultant.token

    def amend():
        return ApiClient(app.test_client(), token).post(f"/api/cases/{case_id}/opinion/amendments",
                                                        json={"reason": "病理回报", "diagnosis": "交界性"}).status_code

    answers, fired, done = _just_before_writing_the_opinion(app, amend)
    try:
        r = consultant.post(f"/api/cases/{case_id}/opinion/amendments", json={"reason": "复核", "diagnosis": "恶性"})
    finally:
        done()
    assert fired
    assert answers == [201]
    assert r.status_code in (201, 409), r.json
    versions = _signed_intact(consultant, case_id)
    assert [v["version"] for v in versions] == [1, 2, 3][:len(versions)]
    assert len(versions) == (3 if r.status_code == 201 else 2)


def test_a_chunked_body_is_read_not_ignored(app, people, make_case, token_for):
    """A body sent without Content-Length (Transfer-Encoding: chunked, as a streaming client sends it)
    is the request's body too: signing must not silently sign the saved draft without it."""
    case_id = case_in(people, make_case, "accepted")
    consultant = people["consultant"]
    assert consultant.put(f"/api/cases/{case_id}/opinion/draft", json={"diagnosis": "良性",
                                                                       "recommendations": "随访"}).status_code == 200
    headers = {"Authorization": f"Bearer {token_for(people['ids'][1])}", "Content-Type": "application/json"}

    def chunked(body: dict):
        yield json.dumps(body, ensure_ascii=False).encode()

    with ThreadServer(app) as server:
        r = requests.post(f"{server.url}/api/cases/{case_id}/opinion", headers=headers, timeout=30,
                          data=chunked({"diagnosis": "交界性肿瘤"}))
        assert r.status_code == 200, r.text
        assert r.json()["opinion"]["diagnosis"] == "交界性肿瘤"
        bad = requests.post(f"{server.url}/api/cases/{case_id}/opinion/amendments", headers=headers, timeout=30,
                            data=chunked({"reason": "x", "differential": "not a list"}))
        assert bad.status_code == 400
    owner_case = case_in(people, make_case, "submitted")
    with ThreadServer(app) as server:
        r = requests.post(f"{server.url}/api/cases/{owner_case}/decline", headers=headers, timeout=30,
                          data=chunked({"reason": "超出专业范围"}))
        assert r.status_code == 200, r.text
    steps = people["owner"].get(f"/api/cases/{owner_case}/timeline").json["items"]
    assert steps[-1]["note"] == "超出专业范围"
