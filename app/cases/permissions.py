"""Who may see or do what on a case: the one place this is decided.

Every route and socket handler calls :func:`require` (or :func:`can`). A case the caller may
not see is reported as not found, so its existence is not revealed; an action the caller's role
does not allow on a case they can see is forbidden.
"""

from enum import StrEnum

from app.accounts.models import User
from app.cases.models import Case
from app.core.errors import Forbidden, NotFound
from app.extensions import db


class Action(StrEnum):
    VIEW = "view"
    DOWNLOAD = "download"
    UPLOAD = "upload"


OWNER, CONSULTANT = "owner", "consultant"

# role -> actions it allows
ALLOWED: dict[str, frozenset[Action]] = {
    OWNER: frozenset({Action.VIEW, Action.DOWNLOAD, Action.UPLOAD}),
    CONSULTANT: frozenset({Action.VIEW, Action.DOWNLOAD}),
}


def role_of(user: User, case: Case) -> str | None:
    """Return the user's role on the case, or None if they have none."""
    if case.owner_id == user.id:
        return OWNER
    # A designated specialist sees the case once it has been shared (never a draft).
    if case.consultant_id == user.id and case.status != "draft":
        return CONSULTANT
    return None


def can(user: User, case: Case, action: Action) -> bool:
    """Tell whether the user may take the action on the case."""
    role = role_of(user, case)
    return role is not None and action in ALLOWED[role]


def require(user: User, case_id: int, action: Action) -> Case:
    """Return the case if the user may take the action; raise NotFound or Forbidden otherwise."""
    case = db.session.get(Case, case_id)
    if case is None or role_of(user, case) is None:
        raise NotFound("case not found")
    if not can(user, case, action):
        raise Forbidden(f"your role on this case does not allow: {action.value}")
    return case


def visible_case_filter(user: User):
    """A SQL condition selecting the cases the user may see (mirrors role_of)."""
    import sqlalchemy as sa

    return sa.or_(Case.owner_id == user.id, sa.and_(Case.consultant_id == user.id, Case.status != "draft"))
