"""Two requests on one case at the same moment: one wins, the other gets a 4xx, nothing happens twice.

Each race is made to happen (tests/support/races.py): the second request runs just before the first
writes, on both engines.
"""

from tests.conftest import ApiClient
from tests.support.races import just_before


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
