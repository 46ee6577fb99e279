"""A blinded peer review's disagreement turned into a teaching case: who may, what it carries,
the same consent and unpublishing, and blinding kept both ways."""

import json
import re

import pytest

from tests.conftest import PASSWORD
from tests.support.live import ThreadServer, race

NOTE = "附件区囊实性包块伴血流信号，应先考虑交界性或恶性肿瘤，不宜仅随访"
REVIEWER_NAME = "盲审者甲"


@pytest.fixture
def reviewed(world, pooled_case, api_as, make_user):
    """The consortium world's pooled case, assigned to gyn, answered and closed, then reviewed blind
    by a gynecologist of the pool (major disagreement); a doctor of the requesting member hospital
    reads the consortium's collection; a second reviewer who agreed."""
    ids = dict(world, case=pooled_case)
    ids["reviewer"] = make_user(specialty="gynecology", institution_id=world["tertiary"], name=REVIEWER_NAME)
    ids["agreer"] = make_user(specialty="gynecology", institution_id=world["tertiary"])
    ids["reader"] = make_user(institution_id=world["county"])
    cadmin = api_as(world["cadmin"])
    for who in ("reviewer", "agreer"):
        r = cadmin.post(f"/api/orgs/{world['pool']}/members", json={"user_id": ids[who], "role": "member"})
        assert r.status_code == 201, r.json
    case = f"/api/cases/{pooled_case}"
    assert api_as(world["coord"]).post(f"{case}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    gyn = api_as(world["gyn"])
    assert gyn.post(f"{case}/accept").status_code == 200
    r = gyn.post(f"{case}/opinion", json={"diagnosis": "卵巢囊肿，良性可能", "recommendations": "三个月后复查超声"})
    assert r.status_code == 200, r.json
    r = api_as(world["gp"]).post(f"{case}/close", json={"rating": 4})
    assert r.status_code == 200, r.json
    r = api_as(ids["reviewer"]).post("/api/peer-reviews", json={"case_id": pooled_case, "score": "major",
                                                                "teaching_note": NOTE})
    assert r.status_code == 201, r.json
    ids["review"] = r.json["id"]
    r = api_as(ids["agreer"]).post("/api/peer-reviews", json={"case_id": pooled_case, "score": "agree"})
    assert r.status_code == 201, r.json
    ids["agree_review"] = r.json["id"]
    return ids


def _propose(api, review_id, org_id, **tags):
    body = {"org_id": org_id, "tags": {"keywords": ["卵巢交界性肿瘤"], "difficulty": "advanced", **tags}}
    return api.post(f"/api/peer-reviews/{review_id}/teaching", json=body)


def _names(api_as, ids, *who) -> list[str]:
    out = []
    for w in who:
        me = api_as(ids[w]).get("/api/me").json
        out += [me["name"], me["institution"]["name"]]
    return out


@pytest.mark.parametrize(("proposer", "capacity"), [("gyn", "author"), ("reviewer", "reviewer"),
                                                    ("coord", "coordinator"), ("cadmin", "coordinator")])
def test_major_disagreement_to_published_teaching_case_and_back(api_as, reviewed, proposer, capacity):
    ids = reviewed
    api = api_as(ids[proposer])
    # The proposer finds the disagreement in their list, blinded.
    listed = api.get("/api/peer-reviews/teachable").json["items"]
    assert [(i["id"], i["score"], i["as"], i["proposable"]) for i in listed] == [
        (ids["review"], "major", capacity, True)]
    assert listed[0]["teaching_note"] == NOTE
    assert not {"reviewer_id", "reviewee_id", "author", "reviewer"} & set(listed[0])
    hidden = _names(api_as, ids, "gyn") if proposer == "reviewer" else [REVIEWER_NAME]
    assert not [n for n in hidden if n in json.dumps(listed, ensure_ascii=False)]

    r = _propose(api, ids["review"], ids["consortium"])
    assert r.status_code == 201, r.json
    t = r.json
    assert t["state"] == "proposed"
    assert t["note"] == NOTE
    assert t["peer_review"] == {"score": "major"}
    assert t["tags"]["keywords"] == ["卵巢交界性肿瘤", "同行评议分歧"]
    assert t["tags"]["difficulty"] == "advanced"
    assert t["tags"]["specialty"] == "gynecology"

    # The referring doctor is asked, without the proposer's name (it may be the reviewer).
    owner = api_as(ids["gp"])
    asked = [n for n in owner.get("/api/notifications").json["items"] if n["kind"] == "teaching_proposed_review"]
    assert len(asked) == 1
    assert REVIEWER_NAME not in asked[0]["text"]
    assert [p["id"] for p in owner.get("/api/teaching/pending").json["items"]] == [t["id"]]
    reader = api_as(ids["reader"])
    assert reader.get(f"/api/teaching/{t['id']}").status_code == 404  # not before consent
    assert owner.post(f"/api/teaching/{t['id']}/consent", json={"agree": True}).json["state"] == "published"

    # A doctor of a member hospital reads it: opinion, the review's note and score, no names.
    assert [i["id"] for i in reader.get("/api/teaching").json["items"]] == [t["id"]]
    assert [i["id"] for i in reader.get("/api/teaching", query_string={"q": "同行评议分歧"}).json["items"]] == [t["id"]]
    item = reader.get(f"/api/teaching/{t['id']}").json
    assert item["opinion"]["diagnosis"] == "卵巢囊肿，良性可能"
    assert item["note"] == NOTE
    assert item["peer_review"] == {"score": "major"}
    assert "同行评议分歧" in item["tags"]["keywords"]
    assert item["hospital"] is None
    text = json.dumps(item, ensure_ascii=False)
    assert not [n for n in _names(api_as, ids, "reviewer", "gyn", "gp", "coord") if n in text]
    # The author reads it too (their case), never learning the reviewer.
    assert REVIEWER_NAME not in json.dumps(api_as(ids["gyn"]).get(f"/api/teaching/{t['id']}").json,
                                           ensure_ascii=False)
    listed = api.get("/api/peer-reviews/teachable").json["items"]
    assert listed[0]["teaching"] == [{"id": t["id"], "org_id": ids["consortium"], "state": "published"}]

    # Unpublishing, as for any teaching case: by the proposer, gone at once.
    assert reader.delete(f"/api/teaching/{t['id']}").status_code == 403
    assert api.delete(f"/api/teaching/{t['id']}").status_code == 204
    assert reader.get("/api/teaching").json["items"] == []
    assert reader.get(f"/api/teaching/{t['id']}").status_code == 404


def test_an_agree_review_is_no_teaching_case(api_as, reviewed):
    ids = reviewed
    r = _propose(api_as(ids["agreer"]), ids["agree_review"], ids["consortium"])
    assert r.status_code == 409
    assert "disagreement" in r.json["error"]
    assert r.json["detail"] == {"score": "agree"}
    # Nor is it offered, to its reviewer or to the author.
    assert api_as(ids["agreer"]).get("/api/peer-reviews/teachable").json["items"] == []
    assert [i["id"] for i in api_as(ids["gyn"]).get("/api/peer-reviews/teachable").json["items"]] == [ids["review"]]


def test_outsiders_and_bystanders_get_404(api_as, reviewed, make_user):
    ids = reviewed
    # An outsider, the platform admin (no clinical content), the referring doctor (who consents,
    # not proposes), a plain member of the pool, a consortium member hospital's doctor.
    for who in ("outsider", "admin", "gp", "gyn2", "reader"):
        api = api_as(ids[who])
        r = _propose(api, ids["review"], ids["consortium"])
        assert r.status_code == 404, who
        assert r.json["error"] == "peer review not found"
        assert api.get("/api/peer-reviews/teachable").json["items"] == [], who
    gyn = api_as(ids["gyn"])
    for missing in (999_999, 2**40):
        assert _propose(gyn, missing, ids["consortium"]).status_code == 404


def test_bad_requests_say_what_is_wrong(api_as, reviewed, make_user):
    ids = reviewed
    gyn = api_as(ids["gyn"])
    other = api_as(ids["admin"]).post("/api/orgs", json={"kind": "doctor_group", "name": "别的组"}).json["id"]
    r = _propose(gyn, ids["review"], other)
    assert r.status_code == 400
    assert "belong to" in r.json["error"]
    r = gyn.post(f"/api/peer-reviews/{ids['review']}/teaching", json={"org_id": ids["consortium"],
                                                                      "difficulty": "advanced"})
    assert r.status_code == 400
    assert "tags" in json.dumps(r.json)
    assert _propose(gyn, ids["review"], ids["consortium"], difficulty="extreme").status_code == 400


def test_only_after_close(api_as, world, make_case_in_progress, make_user):
    case_id, ids = make_case_in_progress(users={"reviewer": {"specialty": "gynecology",
                                                             "institution_id": world["tertiary"]}})
    r = api_as(ids["consultant"]).post(f"/api/cases/{case_id}/opinion", json={"diagnosis": "子宫肌瘤",
                                                                              "recommendations": "随访"})
    assert r.status_code == 200, r.json
    r = api_as(ids["reviewer"]).post("/api/peer-reviews", json={"case_id": case_id, "score": "minor",
                                                                "teaching_note": "应先排除子宫肉瘤"})
    assert r.status_code == 201, r.json
    reviewer = api_as(ids["reviewer"])
    assert [i["proposable"] for i in reviewer.get("/api/peer-reviews/teachable").json["items"]] == [False]
    r = _propose(reviewer, r.json["id"], world["consortium"])
    assert r.status_code == 409
    assert r.json["detail"]["status"] == "answered"


def test_a_second_proposal_is_refused_clearly(api_as, reviewed, make_user):
    ids = reviewed
    assert _propose(api_as(ids["reviewer"]), ids["review"], ids["consortium"]).status_code == 201
    r = _propose(api_as(ids["gyn"]), ids["review"], ids["consortium"])
    assert r.status_code == 409
    assert r.json["error"] == "this peer review was already proposed to this collection"
    assert r.json["detail"]["state"] == "proposed"
    # The case is in that collection already, whichever way it came.
    second = make_user(specialty="gynecology", institution_id=ids["tertiary"])
    r = api_as(second).post("/api/peer-reviews", json={"case_id": ids["case"], "score": "minor",
                                                       "teaching_note": "随访间隔应缩短"})
    r = _propose(api_as(ids["gyn"]), r.json["id"], ids["consortium"])
    assert (r.status_code, r.json["error"]) == (409, "already proposed to this collection")
    r = api_as(ids["gyn"]).post(f"/api/cases/{ids['case']}/teaching", json={"org_id": ids["consortium"]})
    assert r.status_code == 409
    # Another collection (the pool's) is another proposal, as for any case.
    assert _propose(api_as(ids["gyn"]), ids["review"], ids["pool"]).status_code == 201


def test_two_racing_proposals_make_one_teaching_case(app, api_as, reviewed, token_for):
    ids = reviewed
    tokens = {who: token_for(ids[who]) for who in ("gyn", "reviewer")}
    with ThreadServer(app) as server:
        path, body = f"/api/peer-reviews/{ids['review']}/teaching", {"org_id": ids["consortium"]}
        results = race(server, {who: (token, "POST", path, body) for who, token in tokens.items()})
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [201, 409], {w: (r.status_code, r.text[:200]) for w, r in results.items()}
    loser = next(r for r in results.values() if r.status_code == 409)
    assert loser.json()["error"] == "this peer review was already proposed to this collection"
    listed = api_as(ids["gyn"]).get("/api/peer-reviews/teachable").json["items"]
    assert len(listed[0]["teaching"]) == 1
    assert len(api_as(ids["gp"]).get("/api/teaching/pending").json["items"]) == 1


def test_pages_offer_the_proposal_and_show_the_note_beside_the_opinion(app, api_as, reviewed):
    ids = reviewed

    def browser_as(who):
        browser = app.test_client()
        html = browser.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        email = api_as(ids[who]).get("/api/me").json["email"]
        browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
        return browser

    page = browser_as("reviewer").get("/teaching").get_data(as_text=True)
    assert f'data-api="/api/peer-reviews/{ids["review"]}/teaching"' in page
    assert NOTE in page
    assert "重大分歧" in page
    assert "teaching-reviews" not in browser_as("reader").get("/teaching").get_data(as_text=True)
    tid = _propose(api_as(ids["reviewer"]), ids["review"], ids["consortium"]).json["id"]
    api_as(ids["gp"]).post(f"/api/teaching/{tid}/consent", json={"agree": True})
    page = browser_as("reader").get(f"/teaching/{tid}").get_data(as_text=True)
    pair = page[page.index('class="teaching-pair"'):]
    assert pair.index('id="teaching-opinion"') < pair.index('id="teaching-review-note"')
    assert NOTE in pair
    assert 'data-disagreement="major"' in pair
    assert REVIEWER_NAME not in page
    assert 'id="teaching-note"' not in page  # the note is shown once, beside the opinion


COPY = ("title", "question", "summary", "patient", "studies", "reports", "opinion")


@pytest.mark.parametrize("proposer", ["reviewer", "coord", "cadmin"])
def test_the_copy_waits_for_consent_for_a_proposer_who_cannot_read_the_case(app, api_as, reviewed, proposer):
    """A proposer from a peer review who does not read the case's reports and opinion (the blinded
    reviewer, a pool coordinator, a consortium admin) sees the proposal, not the patient's case, until
    the referring doctor agrees; once they refuse, never."""
    ids = reviewed
    api = api_as(ids[proposer])
    r = _propose(api, ids["review"], ids["consortium"])
    assert r.status_code == 201, r.json
    tid = r.json["id"]
    seen = [r.json, api.get(f"/api/teaching/{tid}").json,
            *[t for t in api.get("/api/teaching/pending").json["items"] if t["id"] == tid]]
    assert len(seen) == 3
    for item in seen:
        assert {k: item[k] for k in COPY} == dict.fromkeys(COPY), item
        assert item["copy_withheld"] is True
        assert (item["state"], item["note"], item["peer_review"]) == ("proposed", NOTE, {"score": "major"})
    text = json.dumps(seen, ensure_ascii=False)
    for secret in ("卵巢囊肿，良性可能", "三个月后复查超声"):  # the signed opinion
        assert secret not in text
    email = api.get("/api/me").json["email"]
    with app.test_client() as browser:
        html = browser.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
        browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
        page = browser.get(f"/teaching/{tid}").get_data(as_text=True)
        assert "teaching-copy-withheld" in page
        assert "卵巢囊肿，良性可能" not in page
        assert browser.get(f"/teaching/{tid}/viewer").status_code == 404
        assert f'data-teaching-id="{tid}"' in browser.get("/teaching").get_data(as_text=True)
    # The referring doctor and the author (the case's own people) read it to decide.
    for who in ("gp", "gyn"):
        item = api_as(ids[who]).get(f"/api/teaching/{tid}").json
        assert item["opinion"]["diagnosis"] == "卵巢囊肿，良性可能"
        assert item["copy_withheld"] is False
    assert api_as(ids["gp"]).post(f"/api/teaching/{tid}/consent", json={"agree": False}).json["state"] == "refused"
    item = api.get(f"/api/teaching/{tid}").json
    assert (item["state"], item["opinion"], item["reports"], item["patient"]) == ("refused", None, None, None)


def test_a_published_copy_is_read_by_its_proposer_too(api_as, reviewed):
    ids = reviewed
    tid = _propose(api_as(ids["coord"]), ids["review"], ids["consortium"]).json["id"]
    api_as(ids["gp"]).post(f"/api/teaching/{tid}/consent", json={"agree": True})
    item = api_as(ids["coord"]).get(f"/api/teaching/{tid}").json
    assert item["opinion"]["diagnosis"] == "卵巢囊肿，良性可能"
    assert item["copy_withheld"] is False
