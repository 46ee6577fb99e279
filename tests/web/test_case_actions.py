"""The case page offers exactly the actions permissions.available_actions gives, one card each."""

import re

import pytest

from tests.cases.test_available_actions import expected
from tests.support.statuses import PATHS, case_in_status

# Each action card on the case page, by the action it offers.
CARDS = {"close": "close", "accept": "decide", "answer": "answer", "upload": "upload", "share": "share",
         "ask": "ask", "invite": "invite", "write_opinion": "opinion-editor", "report": "report",
         "withdraw": "withdraw", "assign": "assign"}


def shown(html: str) -> set[str]:
    """Return the actions whose card (or the sign button) is on the page."""
    cards = set(re.findall(r'<section class="card action" id="([\w-]+)">', html))
    actions = {action for action, card in CARDS.items() if card in cards}
    assert cards == {CARDS[a] for a in actions}, cards  # no card that is not an action
    return actions | ({"sign_opinion"} if 'id="sign-btn"' in html else set())


@pytest.mark.parametrize("status", list(PATHS))
def test_case_page_shows_exactly_the_actions_available_now(api_as, make_user, make_case, status):
    case_id, ids = case_in_status(api_as, make_user, make_case, status)
    for role, user_id in ids.items():
        api = api_as(user_id)
        r = api.get(f"/cases/{case_id}")
        if not expected(role, status):
            assert r.status_code == 404
            continue
        assert r.status_code == 200
        offered = set(CARDS) | {"sign_opinion"}
        assert shown(r.get_data(as_text=True)) == expected(role, status) & offered, (role, status)
        assert shown(r.get_data(as_text=True)) == set(api.get(f"/api/cases/{case_id}").json["actions_now"]) & offered


def test_owner_of_a_draft_sees_share_upload_and_withdraw(api_as, make_user, make_case):
    case_id, ids = case_in_status(api_as, make_user, make_case, "draft")
    html = api_as(ids["owner"]).get(f"/cases/{case_id}").get_data(as_text=True)
    assert shown(html) == {"share", "upload", "withdraw"}
