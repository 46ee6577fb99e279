"""The close-out follow-up: thirty days after closing, the owner is asked once whether the advice
was followed; one tap answers it."""

from datetime import datetime, timedelta

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case
from app.core.errors import Conflict
from app.core.time import utcnow
from app.extensions import db
from app.metrics.models import FollowUp
from app.notifications.service import notify

FOLLOW_UP_AFTER = timedelta(days=30)


def ask_due_follow_ups(*, now: datetime | None = None) -> int:
    """Ask the owner of every case closed 30+ days ago, once each; return how many were asked."""
    now = now or utcnow()
    asked = sa.select(FollowUp.case_id).where(FollowUp.case_id == Case.id).exists()
    cases = db.session.scalars(sa.select(Case).where(
        Case.status == "closed", Case.closed_at <= now - FOLLOW_UP_AFTER, Case.consultant_id.is_not(None), ~asked)
        .order_by(Case.id))
    count = 0
    for case in cases:
        db.session.add(FollowUp(case_id=case.id, asked_at=now))
        # The consultant is named as the one whose advice is asked about.
        notify(users=[case.owner], case_id=case.id, kind="follow_up", actor=case.consultant)
        count += 1
    db.session.flush()
    return count


def answer_follow_up(*, case: Case, actor: User, followed: bool) -> FollowUp:
    """Record whether the advice was followed; a follow-up is answered once."""
    follow_up = db.session.get(FollowUp, case.id)
    if follow_up is None:
        raise Conflict("no follow-up has been asked for this case")
    result = db.session.execute(sa.update(FollowUp).where(
        FollowUp.case_id == case.id, FollowUp.answered_at.is_(None)).values(followed=followed, answered_at=utcnow()))
    if result.rowcount != 1:
        raise Conflict("the follow-up is already answered", {"followed": follow_up.followed})
    db.session.refresh(follow_up)
    return follow_up


def unanswered(*, case_ids: list[int]) -> set[int]:
    """Which of these cases have a follow-up asked and not yet answered."""
    if not case_ids:
        return set()
    return set(db.session.scalars(sa.select(FollowUp.case_id).where(
        FollowUp.case_id.in_(case_ids), FollowUp.answered_at.is_(None))))
