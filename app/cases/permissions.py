"""Who may see or do what on a case: the one place this is decided.

Every case route is declared with :func:`case_route` (and every socket handler calls
:func:`require`). A case the caller may not see answers 404, so its existence is not revealed;
an action the caller's role does not allow on a case they can see answers 403. Both are audited.
Platform admins get no clinical content unless they are on the case themselves.
"""

from enum import StrEnum
from functools import wraps

import sqlalchemy as sa
from flask import request
from flask_login import current_user

from app.accounts.models import User
from app.cases.models import Case, Participant
from app.core.errors import DomainError, Forbidden, NotFound
from app.extensions import db


class Action(StrEnum):
    VIEW = "view"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    SHARE = "share"
    WITHDRAW = "withdraw"
    ACCEPT = "accept"
    DECLINE = "decline"
    INVITE = "invite"
    REMOVE = "remove"
    ASK = "ask"
    ANSWER = "answer"
    REPORT = "report"
    WRITE_OPINION = "write_opinion"
    SIGN_OPINION = "sign_opinion"
    CLOSE = "close"
    READ_AUDIT = "read_audit"
    CHAT = "chat"
    MANAGE_LINKS = "manage_links"


OWNER, CONSULTANT, PARTICIPANT = "owner", "consultant", "participant"
ROLES = (OWNER, CONSULTANT, PARTICIPANT)

_READ = {Action.VIEW, Action.DOWNLOAD, Action.CHAT}
ALLOWED: dict[str, frozenset[Action]] = {
    OWNER: frozenset(_READ | {Action.UPLOAD, Action.SHARE, Action.WITHDRAW, Action.ANSWER, Action.CLOSE,
                              Action.READ_AUDIT, Action.MANAGE_LINKS}),
    CONSULTANT: frozenset(_READ | {Action.UPLOAD, Action.ACCEPT, Action.DECLINE, Action.INVITE, Action.REMOVE,
                                   Action.ASK, Action.REPORT, Action.WRITE_OPINION, Action.SIGN_OPINION,
                                   Action.READ_AUDIT, Action.MANAGE_LINKS}),
    PARTICIPANT: frozenset(_READ | {Action.REPORT}),
}


def role_of(user: User, case: Case) -> str | None:
    """Return the user's role on the case, or None if they have none."""
    if case.owner_id == user.id:
        return OWNER
    if case.status == "draft":
        return None  # a draft is the owner's alone
    if case.consultant_id == user.id:
        return CONSULTANT
    active = db.session.scalar(sa.select(Participant.id).where(
        Participant.case_id == case.id, Participant.user_id == user.id, Participant.removed_at.is_(None)))
    return PARTICIPANT if active is not None else None


def can(user: User, case: Case, action: Action) -> bool:
    """Tell whether the user may take the action on the case."""
    role = role_of(user, case)
    return role is not None and action in ALLOWED[role]


def allowed_actions(user: User, case: Case) -> list[str]:
    """Return the actions the user's role allows on the case (for the UI to offer)."""
    role = role_of(user, case)
    return sorted(ALLOWED[role]) if role else []


def require(user: User, case_id: int, action: Action) -> Case:
    """Return the case if the user may take the action; raise NotFound or Forbidden otherwise."""
    case = db.session.get(Case, case_id)
    if case is None or role_of(user, case) is None:
        raise NotFound("case not found")
    if not can(user, case, action):
        raise Forbidden(f"your role on this case does not allow: {action.value}", {"action": action.value})
    return case


def visible_case_filter(user: User):
    """A SQL condition selecting the cases the user may see (mirrors role_of)."""
    participant = sa.select(Participant.case_id).where(
        Participant.user_id == user.id, Participant.removed_at.is_(None))
    return sa.or_(
        Case.owner_id == user.id,
        sa.and_(Case.status != "draft", sa.or_(Case.consultant_id == user.id, Case.id.in_(participant))),
    )


def case_route(action: Action, *, audit: str | None = None):
    """Declare a case route: login, access check for ``action``, then the audit row.

    The view receives the Case instead of its id. Denied attempts (404/403) are audited too.
    ``audit`` names the logged action (default: the endpoint name); "none" skips logging,
    for routes that log in their own aggregated way.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(case_id: int, **kwargs):
            from app.accounts.auth import login_manager
            from app.audit import service as audit_log

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            name = audit or request.endpoint.split(".")[-1]
            try:
                case = require(current_user, case_id, action)
                response = view(case, **kwargs)
            except DomainError as exc:
                db.session.rollback()
                if name != "none" or exc.status in (403, 404):
                    audit_log.record(user_id=current_user.id, case_id=case_id, action=name,
                                     status=exc.status, detail={"error": exc.error})
                raise
            if name != "none":
                status = response[1] if isinstance(response, tuple) else getattr(response, "status_code", 200)
                audit_log.record(user_id=current_user.id, case_id=case_id, action=name, status=status)
            return response

        wrapper.case_action = action
        wrapper.requires_auth = True
        return wrapper

    return decorate
