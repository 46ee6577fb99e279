"""The close form asks the close-out survey; the 30-day follow-up is answered with one tap in the inbox."""

import html as htmllib
import re
from datetime import timedelta

from app.cases.models import ADVICE_VALUES, OUTCOMES, Case
from app.extensions import db
from tests.metrics import test_closeout

answered = test_closeout.answered  # the fixture: a case shared, accepted and answered


def _close_form(page: str) -> str:
    card = re.search(r'<section class="card action" id="close">(.*?)</section>', page, re.S)
    assert card, "no close card"
    return card.group(1)


def _radios(form: str, name: str) -> list[tuple[str, bool]]:
    """(value, required) of each radio of the group, in page order."""
    return [(m.group(1), "required" in m.group(0))
            for m in re.finditer(rf'<input type="radio" name="{name}" value="([^"]+)"[^>]*>', form)]


def test_close_form_asks_rating_comment_outcome_and_advice(client, login, answered, app):
    case_id, ids = answered
    csrf = login(ids["owner"])
    form = _close_form(client.get(f"/cases/{case_id}").get_data(as_text=True))
    assert [v for v, _ in _radios(form, "rating")] == ["1", "2", "3", "4", "5"]
    assert 'name="comment"' in form
    assert _radios(form, "outcome") == [(v, True) for v in OUTCOMES]
    assert _radios(form, "advice") == [(v, True) for v in ADVICE_VALUES]
    assert "避免了转诊" in form
    assert "提供了新的建议" in form
    # What the form sends (actions.js: checked radios, the comment) closes the case with the survey.
    api = re.search(r'<form data-api="([^"]+)" data-method="POST"', form).group(1)
    r = client.post(htmllib.unescape(api), headers={"X-CSRFToken": csrf},
                    json={"rating": 4, "comment": "清楚", "outcome": "already_planned", "advice": "confirmed_plan"})
    assert r.status_code == 200, r.json
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert (case.status, case.rating, case.outcome, case.advice) == ("closed", 4, "already_planned",
                                                                         "confirmed_plan")


def test_close_form_in_english(client, login, answered):
    case_id, ids = answered
    login(ids["owner"])
    client.get(f"/lang/en?next=/cases/{case_id}")
    form = _close_form(client.get(f"/cases/{case_id}").get_data(as_text=True))
    for words in ("Outcome for the patient", "Referral avoided", "Referral still needed", "Referral already planned",
                  "Value of the advice", "Confirmed my plan", "Gave new advice", "Not useful"):
        assert words in form
    assert "避免了转诊" not in form


def _follow_up_forms(page: str, case_id: int) -> list[tuple[str, bool]]:
    """(the API route, followed) of each one-tap form the inbox offers for the case."""
    found = re.findall(r'<form data-api="(/api/cases/(\d+)/follow-up)" data-method="POST" class="inline">\s*'
                       r'<input type="checkbox" name="followed" data-type="bool" hidden( checked)?>', page)
    return [(api, bool(checked)) for api, cid, checked in found if int(cid) == case_id]


def test_follow_up_is_answered_with_one_tap_in_the_inbox(client, login, answered, api_as, app, runner):
    case_id, ids = answered
    assert api_as(ids["owner"]).post(f"/api/cases/{case_id}/close", json={
        "rating": 5, "outcome": "referral_avoided", "advice": "new_advice"}).status_code == 200
    csrf = login(ids["owner"])
    assert _follow_up_forms(client.get("/").get_data(as_text=True), case_id) == []  # not asked yet
    with app.app_context():
        db.session.get(Case, case_id).closed_at -= timedelta(days=31)
        db.session.commit()
    assert "follow-ups asked: 1" in runner.invoke(args=["follow-ups"]).output
    page = client.get("/").get_data(as_text=True)
    forms = _follow_up_forms(page, case_id)
    assert forms == [(f"/api/cases/{case_id}/follow-up", True), (f"/api/cases/{case_id}/follow-up", False)]
    assert "已采纳" in page
    assert "未采纳" in page
    # The "followed" tap: its checked hidden box is sent as true.
    r = client.post(forms[0][0], headers={"X-CSRFToken": csrf}, json={"followed": forms[0][1]})
    assert r.status_code == 200, r.json
    assert r.json["followed"] is True
    assert _follow_up_forms(client.get("/").get_data(as_text=True), case_id) == []  # answered: no more buttons
