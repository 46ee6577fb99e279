"""permissions.available_actions: the actions a user may take on a case now, role and status together.

The table below is the rule written out by hand; the function must match it cell by cell, and the
case JSON carries it as ``actions_now`` next to ``allowed_actions`` (role) and ``transitions`` (status).
"""

import io

import pytest

from app.accounts.models import User
from app.cases.models import Case
from app.cases.permissions import available_actions
from app.extensions import db
from tests.support.statuses import PATHS, case_in_status

READ = {"view", "view_images", "download", "chat", "read_opinion"}
# Share links can be made and revoked in any status (revoking matters most once a case is over).
OWNER_READ = READ | {"read_audit", "manage_links"}
CONSULTANT_READ = READ | {"read_audit", "remove", "manage_links"}

EXPECTED = {
    ("owner", "draft"): OWNER_READ | {"upload", "share", "withdraw"},
    ("owner", "submitted"): OWNER_READ | {"upload", "withdraw"},
    ("owner", "declined"): OWNER_READ | {"upload", "share"},
    ("owner", "withdrawn"): OWNER_READ,
    ("owner", "accepted"): OWNER_READ | {"upload"},
    ("owner", "info_requested"): OWNER_READ | {"upload", "answer"},
    ("owner", "answered"): OWNER_READ | {"close"},
    ("owner", "closed"): OWNER_READ,
    ("consultant", "draft"): set(),  # a draft is the owner's alone
    ("consultant", "submitted"): CONSULTANT_READ | {"upload", "accept", "decline"},
    ("consultant", "declined"): set(),  # declining hands the case back
    ("consultant", "withdrawn"): set(),  # withdrawn before it was shared
    ("consultant", "accepted"): CONSULTANT_READ | {"upload", "invite", "ask", "report", "write_opinion",
                                                   "sign_opinion"},
    ("consultant", "info_requested"): CONSULTANT_READ | {"upload", "invite", "report", "write_opinion"},
    ("consultant", "answered"): CONSULTANT_READ | {"amend_opinion"},
    ("consultant", "closed"): CONSULTANT_READ | {"amend_opinion", "propose_teaching"},
    ("participant", "accepted"): READ | {"report"},
    ("participant", "info_requested"): READ | {"report"},
    ("participant", "answered"): READ,
    ("participant", "closed"): READ,
}


def expected(role: str, status: str) -> set[str]:
    return EXPECTED.get((role, status), set())  # participants join once the case is accepted


@pytest.mark.parametrize("status", list(PATHS))
def test_actions_now_are_role_and_status_together(app, api_as, make_user, make_case, status):
    case_id, ids = case_in_status(api_as, make_user, make_case, status)
    for role, user_id in ids.items():
        with app.app_context():
            got = available_actions(db.session.get(User, user_id), db.session.get(Case, case_id))
        assert {a.value for a in got} == expected(role, status), (role, status)
        r = api_as(user_id).get(f"/api/cases/{case_id}")
        if not expected(role, status):
            assert r.status_code == 404
            continue
        body = r.json
        assert body["actions_now"] == sorted(expected(role, status))
        assert set(body["actions_now"]) <= set(body["allowed_actions"])  # the old fields stay


def test_consultant_cannot_upload_once_answered_and_the_api_agrees(app, api_as, make_user, make_case):
    case_id, ids = case_in_status(api_as, make_user, make_case, "answered")
    consultant = api_as(ids["consultant"])
    assert "upload" not in consultant.get(f"/api/cases/{case_id}").json["actions_now"]
    r = consultant.post(f"/api/cases/{case_id}/files", data={"files": (io.BytesIO(b"%PDF-1.4"), "a.pdf")},
                        content_type="multipart/form-data")
    assert r.status_code == 409
    assert r.json["detail"]["attempted"] == "upload"


def test_amendment_is_offered_and_taken_once_answered(api_as, make_user, make_case):
    case_id, ids = case_in_status(api_as, make_user, make_case, "answered")
    consultant, participant = api_as(ids["consultant"]), api_as(ids["participant"])
    assert "amend_opinion" in consultant.get(f"/api/cases/{case_id}").json["actions_now"]
    body = {"diagnosis": "卵巢囊肿（修订）", "reason": "补充病理"}
    r = participant.post(f"/api/cases/{case_id}/opinion/amendments", json=body)
    assert r.status_code == 403
    assert r.json["detail"] == {"action": "amend_opinion"}
    assert consultant.post(f"/api/cases/{case_id}/opinion/amendments", json=body).status_code == 201
