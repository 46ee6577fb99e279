"""Two requests on one case at the same moment: one wins, the other gets a 4xx, nothing happens twice.

Each race is made to happen (tests/support/races.py): the second request runs just before the first
writes, on both engines.
"""

from tests.conftest import ApiClient
from tests.support.races import just_before

TRANSITION = r"UPDATE cases SET [^;]*?\bstatus=[^;]*WHERE"  # a workflow step's conditional UPDATE


def again(app, api: ApiClient) -> ApiClient:
    """The same user from another tab: a client of its own, the same token."""
    return ApiClient(app.test_client(), api.token)


def steps(api, case_id, action: str) -> list[dict]:
    return [e for e in api.get(f"/api/cases/{case_id}/timeline").json["items"] if e["action"] == action]


def kinds(api) -> list[str]:
    return [n["kind"] for n in api.get("/api/notifications").json["items"]]


def test_two_invitations_of_one_colleague_at_once_make_one_participant_not_a_500(
        app, make_case_in_progress, make_user, api_as):
    case_id, ids = make_case_in_progress()
    colleague = make_user(specialty="radiology")
    consultant = api_as(ids["consultant"])
    body = {"user_id": colleague, "discipline": "radiology"}
    url = f"/api/cases/{case_id}/participants"

    # A double tap: both requests read "not on the case yet"; the unique constraint refused the
    # second insert (PostgreSQL: an IntegrityError, a 500; SQLite: the same once the lock freed).
    with just_before(app, "INSERT INTO participants", lambda: again(app, consultant).post(url, json=body)) as (
            answers, fired):
        r = consultant.post(url, json=body)
    assert fired
    codes = sorted([r.status_code, *(a.status_code for a in answers)])
    assert codes == [201, 409], [r.json, *(a.json for a in answers)]
    assert [p["user_id"] for p in consultant.get(url).json["items"]] == [colleague]
    assert len(steps(consultant, case_id, "invited")) == 1
    assert kinds(api_as(colleague)) == ["invited"]


def test_a_report_saved_twice_at_once_is_one_report(app, make_case_in_progress, api_as):
    case_id, ids = make_case_in_progress()
    consultant = api_as(ids["consultant"])
    url = f"/api/cases/{case_id}/reports"

    # Two saves of one author's report (a retry, a second tab) both found none and both inserted: two
    # reports, both copied into the signed opinion's contributions.
    with just_before(app, "INSERT INTO discipline_reports",
                     lambda: again(app, consultant).post(url, json={"body": "第二稿"})) as (answers, fired):
        r = consultant.post(url, json={"body": "第一稿"})
    assert fired
    assert [r.status_code, *(a.status_code for a in answers)] == [201, 201]
    reports = consultant.get(url).json["items"]
    assert len(reports) == 1, reports
    assert reports[0]["body"] == "第二稿"  # the later save replaced the text


def test_two_removals_of_one_participant_at_once_remove_once(app, make_case_in_progress, api_as):
    case_id, ids = make_case_in_progress(users={"colleague": {"specialty": "radiology"}},
                                         participants={"colleague": "radiology"})
    consultant = api_as(ids["consultant"])
    url = f"/api/cases/{case_id}/participants/{ids['colleague']}"

    with just_before(app, "UPDATE participants SET removed_at", lambda: again(app, consultant).delete(url)) as (
            answers, fired):
        r = consultant.delete(url)
    assert fired
    assert sorted([r.status_code, *(a.status_code for a in answers)]) == [204, 404]
    assert len(steps(consultant, case_id, "removed")) == 1
    assert kinds(api_as(ids["colleague"])).count("removed") == 1


def test_a_decline_sent_twice_does_not_decline_the_case_for_the_next_specialist(app, make_user, make_case, api_as):
    owner_id, first_id, second_id = make_user(), make_user(specialty="gynecology"), make_user(specialty="gynecology")
    owner, first = api_as(owner_id), api_as(first_id)
    case_id = make_case(owner_id)
    assert owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": first_id}).status_code == 200

    def declined_and_shared_again():
        declined = again(app, first).post(f"/api/cases/{case_id}/decline", json={"reason": "超出专业范围"})
        shared = again(app, owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": second_id})
        return declined.status_code, shared.status_code

    # The decline's second copy was let in while the case was still the first specialist's; by the
    # time it lands, the first copy has declined and the owner has shared the case with a colleague.
    with just_before(app, TRANSITION, declined_and_shared_again) as (answers, fired):
        r = first.post(f"/api/cases/{case_id}/decline", json={"reason": "超出专业范围"})
    assert fired
    assert answers == [(200, 200)]
    assert r.status_code == 409, r.json  # before: 200, and the colleague's case declined in their name
    case = owner.get(f"/api/cases/{case_id}").json
    assert (case["status"], case["consultant"]["id"]) == ("submitted", second_id)
    assert api_as(second_id).get(f"/api/cases/{case_id}").status_code == 200
    assert len(steps(owner, case_id, "decline")) == 1


def test_a_withdrawal_overtaken_by_a_share_is_a_409_not_a_silent_withdrawal(app, make_user, make_case, api_as):
    owner_id, specialist_id = make_user(), make_user(specialty="gynecology")
    owner = api_as(owner_id)
    case_id = make_case(owner_id)

    def shared():
        return again(app, owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id}).status_code

    # Withdrawn from the draft the owner saw while another tab shared it: the specialist, just asked,
    # was never told it was withdrawn.
    with just_before(app, TRANSITION, shared) as (answers, fired):
        r = owner.post(f"/api/cases/{case_id}/withdraw", json={"reason": "重复提交"})
    assert fired
    assert answers == [200]
    assert r.status_code == 409, r.json
    assert r.json["error"] == "the case changed meanwhile"
    case = owner.get(f"/api/cases/{case_id}").json
    assert (case["status"], case["consultant"]["id"]) == ("submitted", specialist_id)
    # Withdrawn again, now knowingly: the specialist hears of it.
    assert owner.post(f"/api/cases/{case_id}/withdraw", json={"reason": "重复提交"}).status_code == 200
    assert kinds(api_as(specialist_id)) == ["withdrawn", "shared"]
