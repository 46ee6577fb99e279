"""The close-out survey and the 30-day follow-up, through the real API and CLI."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.cases.models import Case
from app.extensions import db
from app.notifications.models import Notification


@pytest.fixture
def answered(make_case_in_progress, api_as):
    """A case shared, accepted and answered: (case id, ids)."""
    case_id, ids = make_case_in_progress()
    r = api_as(ids["consultant"]).post(f"/api/cases/{case_id}/opinion",
                                       json={"diagnosis": "子宫肌瘤", "recommendations": "随访"})
    assert r.status_code == 200, r.json
    return case_id, ids


@pytest.mark.parametrize("body", [
    {"rating": 4, "outcome": "cured"},
    {"rating": 4, "advice": "great"},
    {"rating": 4, "outcome": "referral_avoided", "advice": ""},
    {"rating": 4, "outcome": 1},
])
def test_close_rejects_unknown_survey_values(answered, api_as, body):
    case_id, ids = answered
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/close", json=body)
    assert r.status_code == 400, r.json
    assert api_as(ids["owner"]).get(f"/api/cases/{case_id}").json["status"] == "answered"


def test_close_records_the_survey(answered, api_as, app):
    case_id, ids = answered
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/close", json={
        "rating": 5, "comment": "很有帮助", "outcome": "referral_avoided", "advice": "new_advice"})
    assert r.status_code == 200, r.json
    assert (r.json["status"], r.json["outcome"], r.json["advice"]) == ("closed", "referral_avoided", "new_advice")
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case.accepted_at is not None
        assert case.accepted_at <= case.answered_at


def test_close_without_the_survey_still_works(answered, api_as):
    case_id, ids = answered
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/close", json={"rating": 3})
    assert r.status_code == 200, r.json
    assert r.json["outcome"] is None


def test_follow_up_asked_once_then_answered_once(answered, api_as, app, runner, make_user):
    case_id, ids = answered
    owner = api_as(ids["owner"])
    assert owner.post(f"/api/cases/{case_id}/close", json={"rating": 4, "outcome": "referral_avoided",
                                                            "advice": "confirmed_plan"}).status_code == 200
    assert owner.post(f"/api/cases/{case_id}/follow-up", json={"followed": True}).status_code == 409  # not asked
    assert "follow-ups asked: 0" in runner.invoke(args=["follow-ups"]).output  # not thirty days yet
    with app.app_context():
        case = db.session.get(Case, case_id)
        case.closed_at -= timedelta(days=31)
        db.session.commit()
    assert "follow-ups asked: 1" in runner.invoke(args=["follow-ups"]).output
    assert "follow-ups asked: 0" in runner.invoke(args=["follow-ups"]).output  # once
    with app.app_context():
        kinds = db.session.scalars(sa.select(Notification.kind).where(Notification.user_id == ids["owner"])).all()
        assert kinds.count("follow_up") == 1
    assert owner.post(f"/api/cases/{case_id}/follow-up", json={"followed": "yes"}).status_code == 400
    assert api_as(make_user()).post(f"/api/cases/{case_id}/follow-up", json={"followed": True}).status_code == 404
    assert api_as(ids["consultant"]).post(f"/api/cases/{case_id}/follow-up",
                                          json={"followed": True}).status_code == 403
    r = owner.post(f"/api/cases/{case_id}/follow-up", json={"followed": False})
    assert r.status_code == 200, r.json
    assert r.json["followed"] is False
    assert owner.post(f"/api/cases/{case_id}/follow-up", json={"followed": True}).status_code == 409
