"""The worlds tests start from, built through the real API and registered by tests/conftest.py.

``api`` and ``case_id``: a doctor's API client and a draft case of theirs (modules that need a
different doctor override them). ``make_case_in_progress``: a case shared, accepted and with
participants, as the realtime, access and page tests need it.
"""

import pytest


@pytest.fixture
def api(api_as, make_user):
    """An API client of a new doctor."""
    return api_as(make_user())


@pytest.fixture
def case_id(api):
    """A draft case of the ``api`` doctor."""
    r = api.post("/api/cases", json={"title": "t", "clinical_question": "q"})
    assert r.status_code == 201, r.json
    return r.json["id"]


@pytest.fixture
def make_case_in_progress(make_user, make_case, api_as):
    """Return a factory of cases in progress: make_case_in_progress(users=..., participants=...).

    ``users`` maps a name to make_user's arguments; "owner" and "consultant" (gynecology) are
    always made, first. The owner shares the case, the consultant accepts it and invites the
    ``participants`` (name -> discipline), then removes those named in ``removed``. Other keyword
    arguments are case fields. Returns (case_id, {name: user id}).
    """

    def make(*, users: dict[str, dict] | None = None, participants: dict[str, str] | None = None,
             removed: tuple[str, ...] = (), **case_fields) -> tuple[int, dict[str, int]]:
        specs = {"owner": {}, "consultant": {"specialty": "gynecology"}, **(users or {})}
        ids = {name: make_user(**spec) for name, spec in specs.items()}
        case_id = make_case(ids["owner"], **case_fields)
        owner, consultant = api_as(ids["owner"]), api_as(ids["consultant"])
        r = owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": ids["consultant"]})
        assert r.status_code == 200, r.json
        assert consultant.post(f"/api/cases/{case_id}/accept").status_code == 200
        for who, discipline in (participants or {}).items():
            body = {"user_id": ids[who], "discipline": discipline}
            r = consultant.post(f"/api/cases/{case_id}/participants", json=body)
            assert r.status_code == 201, r.json
        for who in removed:
            assert consultant.delete(f"/api/cases/{case_id}/participants/{ids[who]}").status_code == 204
        return case_id, ids

    return make
