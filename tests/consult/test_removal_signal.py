"""Removing a participant reaches the realtime room through a signal sent after the commit."""

import sqlalchemy as sa

from app.accounts.models import User
from app.cases import service as cases
from app.cases.models import Case, Participant
from app.cases.signals import participant_removed
from app.extensions import db
from tests.consult.test_room import joined


def test_removal_over_the_api_kicks_a_live_socket_after_the_commit(app, live, mdt, clients, api_as):
    case_id, ids, tokens = mdt
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    seen = []

    def committed_when_sent(sender, *, case_id, user_id):
        # A fresh connection sees the removal only if it was committed before the signal went out.
        with db.engine.connect() as conn:
            removed_at = conn.scalar(sa.select(Participant.removed_at).where(
                Participant.case_id == case_id, Participant.user_id == user_id))
        seen.append((sender, case_id, user_id, removed_at is not None))

    participant_removed.connect(committed_when_sent, sender=app)
    try:
        response = api_as(ids["consultant"]).delete(f"/api/cases/{case_id}/participants/{ids['radiology']}")
        assert response.status_code == 204
    finally:
        participant_removed.disconnect(committed_when_sent, sender=app)
    assert radiology.wait_for("removed")["case_id"] == case_id
    assert seen == [(app, case_id, ids["radiology"], True)]


def test_a_removal_that_is_rolled_back_is_never_announced(app, mdt):
    case_id, ids, _ = mdt
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    participant_removed.connect(receiver, sender=app)
    try:
        with app.app_context():
            case, actor = db.session.get(Case, case_id), db.session.get(User, ids["consultant"])
            cases.remove_participant(case=case, actor=actor, user_id=ids["radiology"])
            db.session.rollback()
            db.session.commit()  # a later commit in the same session must not send it either
            assert seen == []
            cases.remove_participant(case=db.session.get(Case, case_id), actor=actor, user_id=ids["radiology"])
            assert seen == []  # not before the commit
            db.session.commit()
    finally:
        participant_removed.disconnect(receiver, sender=app)
    assert seen == [{"case_id": case_id, "user_id": ids["radiology"]}]
