"""Cases: creating and listing them."""

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case
from app.cases.permissions import visible_case_filter
from app.cases.schemas import CaseCreate
from app.extensions import db


def create_case(*, owner: User, data: CaseCreate) -> Case:
    """Create a draft case owned by the user."""
    case = Case(
        owner=owner,
        title=data.title,
        clinical_question=data.clinical_question,
        summary=data.summary,
        specialty=data.specialty,
        patient_age=data.patient.age,
        patient_sex=data.patient.sex or "unknown",
        urgency=data.urgency,
        status="draft",
    )
    db.session.add(case)
    db.session.flush()
    return case


def list_cases(*, viewer: User) -> list[Case]:
    """Return the cases the user may see, newest first."""
    stmt = sa.select(Case).where(visible_case_filter(viewer)).order_by(Case.created_at.desc(), Case.id.desc())
    return list(db.session.scalars(stmt))


def open_case_counts(user_ids: list[int]) -> dict[int, int]:
    """Return how many open cases (shared with them, not yet answered) each consultant has."""
    if not user_ids:
        return {}
    stmt = (
        sa.select(Case.consultant_id, sa.func.count())
        .where(Case.consultant_id.in_(user_ids), Case.status.in_(("submitted", "accepted", "info_requested")))
        .group_by(Case.consultant_id)
    )
    return dict(db.session.execute(stmt).all())
