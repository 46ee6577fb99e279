"""Who may see or do what on a case: the one place this is decided.

Every case route is declared with :func:`case_route`; any other check of a case (a socket
handler, a route that takes a case id in its query) goes through :func:`authorize_case`, the one
gate both use. A case the caller may not see answers 404, so its existence is not revealed;
an action the caller's role does not allow on a case they can see answers 403. Both are audited.
Platform admins get no clinical content unless they are on the case themselves.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps

import sqlalchemy as sa
from flask import g, request
from flask_login import current_user

from app.accounts.models import User
from app.cases.models import Case, Participant
from app.core.errors import DomainError, Forbidden, NotFound, Unauthorized
from app.extensions import db
from app.orgs.permissions import coordinated_pools, coordinates
from app.teaching.permissions import reads_images_of


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
    AMEND_OPINION = "amend_opinion"
    CLOSE = "close"
    READ_AUDIT = "read_audit"
    CHAT = "chat"
    ASSIGN = "assign"
    REROUTE = "reroute"
    RETURN_TO_POOL = "return_to_pool"  # a workflow step (the designated specialist's decline), not a grant
    MANAGE_LINKS = "manage_links"
    VIEW_IMAGES = "view_images"  # list, render and thumbnail the de-identified images
    PROPOSE_TEACHING = "propose_teaching"
    READ_OPINION = "read_opinion"  # the signed opinion and the discipline reports (their content)


OWNER, CONSULTANT, PARTICIPANT = "owner", "consultant", "participant"
ROLES = (OWNER, CONSULTANT, PARTICIPANT)
COORDINATOR = "coordinator"  # a triage coordinator of the pool the case waits in
TEACHING_VIEWER = "teaching_viewer"  # a reader of a teaching collection the closed case is published in

_READ = {Action.VIEW, Action.VIEW_IMAGES, Action.DOWNLOAD, Action.CHAT, Action.READ_OPINION}
ALLOWED: dict[str, frozenset[Action]] = {
    OWNER: frozenset(_READ | {Action.UPLOAD, Action.SHARE, Action.WITHDRAW, Action.ANSWER, Action.CLOSE,
                              Action.READ_AUDIT, Action.MANAGE_LINKS}),
    CONSULTANT: frozenset(_READ | {Action.UPLOAD, Action.ACCEPT, Action.DECLINE, Action.INVITE, Action.REMOVE,
                                   Action.ASK, Action.REPORT, Action.WRITE_OPINION, Action.SIGN_OPINION,
                                   Action.AMEND_OPINION, Action.READ_AUDIT, Action.MANAGE_LINKS,
                                   Action.PROPOSE_TEACHING}),
    PARTICIPANT: frozenset(_READ | {Action.REPORT}),
    # The case and its images, to triage it: no chat, no reports, no opinion.
    COORDINATOR: frozenset({Action.VIEW, Action.VIEW_IMAGES, Action.DOWNLOAD, Action.ASSIGN, Action.REROUTE}),
    # The de-identified images, through the same routes and viewer: not the case, chat, audit or names.
    TEACHING_VIEWER: frozenset({Action.VIEW_IMAGES}),
}


def _decide_role(user_id: int, *, owner_id: int, status: str, consultant_id: int | None, pool_id: int | None,
                 participates: Callable[[], bool], coordinates_pool: Callable[[int], bool],
                 reads_teaching: Callable[[], bool]) -> str | None:
    """The one ladder of roles, over a case's columns. Its callers (one case, a list, a hot path
    with ids only) differ only in how participation, pool coordination and teaching are looked up;
    the callables are asked only when the ladder gets that far."""
    if owner_id == user_id:
        return OWNER
    if status == "draft":
        return None  # a draft is the owner's alone
    if consultant_id == user_id:
        return CONSULTANT
    if participates():
        return PARTICIPANT
    if pool_id is not None and coordinates_pool(pool_id):
        return COORDINATOR
    if status == "closed" and reads_teaching():
        return TEACHING_VIEWER
    return None


def _role(user: User, case: Case, *, participates: Callable[[], bool],
          coordinates_pool: Callable[[int], bool]) -> str | None:
    return _decide_role(user.id, owner_id=case.owner_id, status=case.status, consultant_id=case.consultant_id,
                        pool_id=case.pool_id, participates=participates, coordinates_pool=coordinates_pool,
                        reads_teaching=lambda: reads_images_of(user, case.id))


def role_of(user: User, case: Case) -> str | None:
    """Return the user's role on the case, or None if they have none."""
    def participates() -> bool:
        active = db.session.scalar(sa.select(Participant.id).where(
            Participant.case_id == case.id, Participant.user_id == user.id, Participant.removed_at.is_(None)))
        return active is not None

    return _role(user, case, participates=participates, coordinates_pool=lambda pool_id: coordinates(user.id, pool_id))


@dataclass(frozen=True)
class Reach:
    """What a user's access to cases rests on beyond the case row's own columns: the cases they
    take part in (not removed) and the pools they coordinate. Looked up once for a whole list."""

    participating: frozenset[int]
    pools: frozenset[int]


def reach_of(user: User) -> Reach:
    """Look up the user's participations and coordinated pools (one query)."""
    pools = coordinated_pools(user.id).subquery()
    rows = db.session.execute(sa.union_all(
        sa.select(sa.literal(PARTICIPANT).label("kind"), Participant.case_id.label("id")).where(
            Participant.user_id == user.id, Participant.removed_at.is_(None)),
        sa.select(sa.literal(COORDINATOR), pools.c.org_id)))
    ids: dict[str, set[int]] = {PARTICIPANT: set(), COORDINATOR: set()}
    for kind, id_ in rows:
        ids[kind].add(id_)
    return Reach(participating=frozenset(ids[PARTICIPANT]), pools=frozenset(ids[COORDINATOR]))


def roles_of(user: User, cases: Iterable[Case], reach: Reach | None = None) -> dict[int, str | None]:
    """Return role_of for each case, by case id, with the participations and pools looked up once
    rather than per case (a listed case never needs more; a case off the user's list may still
    cost the teaching check)."""
    cases = list(cases)
    if not cases:
        return {}
    reach = reach or reach_of(user)
    return {case.id: _role(user, case, participates=lambda c=case: c.id in reach.participating,
                           coordinates_pool=reach.pools.__contains__) for case in cases}


# The columns role_of reads, the caller's active flag and their participation, in one Core query
# (no ORM objects): a user LEFT JOIN the case, so a missing case still tells whether the user is active.
_users, _cases, _participants = User.__table__, Case.__table__, Participant.__table__
_ROLE_FACTS = (
    sa.select(_users.c.active, _cases.c.id, _cases.c.owner_id, _cases.c.status, _cases.c.consultant_id,
              _cases.c.pool_id,
              sa.exists().where(_participants.c.case_id == _cases.c.id, _participants.c.user_id == _users.c.id,
                                _participants.c.removed_at.is_(None)).label("participates"))
    .select_from(_users.outerjoin(_cases, _cases.c.id == sa.bindparam("case_id")))
    .where(_users.c.id == sa.bindparam("user_id"))
)


# The same facts with the case row's share lock (FOR SHARE OF cases, PostgreSQL; nothing on SQLite),
# which may not be taken on the nullable side of an outer join: an inner join, no row without the case.
_LOCKED_ROLE_FACTS = (
    sa.select(*_ROLE_FACTS.selected_columns)
    .select_from(_users.join(_cases, _cases.c.id == sa.bindparam("case_id")))
    .where(_users.c.id == sa.bindparam("user_id"))
    .with_for_update(read=True, of=_cases)
)


def lock_case(case: Case) -> None:
    """Take the case row's write lock until the transaction ends, and reload the case.

    Writes that read what they are about to change take it first, so that two of them run one after
    the other and the second sees what the first wrote: a draft save from another tab and the
    signature (a late save rewrote the signed version, its hash no longer matching), two amendments
    (both took the next version number), two invitations of one colleague (both inserted the
    participant: unique violations, 500s), two saves of a report (two reports).

    It is also what a check with ``lock=True`` waits for. A change that takes away someone's access
    without writing the case row (a participant removed) takes it first; one that writes the row
    (a status, the consultant) holds it already. A write checked under the lock before the change
    commits is committed before it, and one checked after it sees it. An UPDATE that changes nothing
    rather than SELECT FOR UPDATE: it takes the lock on SQLite too (the database's write lock).
    """
    db.session.execute(sa.update(Case).where(Case.id == case.id).values(updated_at=Case.updated_at)
                       .execution_options(synchronize_session=False))
    db.session.refresh(case)


def require_ids(user_id: int, case_id: int, action: Action, *, lock: bool = False) -> str:
    """Return the role of an active user on the case if it allows the action, from ids alone (one query).

    The same rule and errors as :func:`require` (NotFound, Forbidden), without loading the user or
    the case: for hot API paths that have only the token's user id. An unknown or deactivated user
    raises Unauthorized.

    ``lock``: also take the case row's share lock until the transaction ends, so that no loss of
    access (see :func:`lock_case`) commits between this check and the caller's commit. Several
    such checks of one case do not wait for each other. On SQLite, where a read takes no lock, the
    caller writes first: the database's write lock, held to the commit, does the same.
    """
    ids = {"user_id": user_id, "case_id": case_id}
    facts = db.session.execute(_LOCKED_ROLE_FACTS if lock else _ROLE_FACTS, ids).one_or_none()
    if facts is None and lock:
        facts = db.session.execute(_ROLE_FACTS, ids).one_or_none()  # no such case: tell which error
    if facts is None or not facts.active:
        raise Unauthorized(detail="invalid or expired token")
    role = None
    if facts.id is not None:
        role = _decide_role(
            user_id, owner_id=facts.owner_id, status=facts.status, consultant_id=facts.consultant_id,
            pool_id=facts.pool_id, participates=lambda: facts.participates,
            coordinates_pool=lambda pool_id: coordinates(user_id, pool_id),
            reads_teaching=lambda: reads_images_of(db.session.get(User, user_id), case_id))
    if role is None:
        raise NotFound("case not found")
    if action not in ALLOWED[role]:
        raise Forbidden(f"your role on this case does not allow: {action.value}", {"action": action.value})
    return role


def can(user: User, case: Case, action: Action) -> bool:
    """Tell whether the user may take the action on the case."""
    role = role_of(user, case)
    return role is not None and action in ALLOWED[role]


def allowed_actions(user: User, case: Case) -> list[str]:
    """Return the actions the user's role allows on the case (for the UI to offer)."""
    role = role_of(user, case)
    return sorted(ALLOWED[role]) if role else []


# Timeline steps whose note is the opinion's own words (an amendment's reason): the note is read as
# the opinion is, with READ_OPINION; the step itself is shown to whoever sees the timeline.
OPINION_NOTES = frozenset({"opinion_amended"})


def reads_note(user: User, case: Case, step: str) -> bool:
    """Tell whether the user may read the note of a timeline step of this kind on the case."""
    return step not in OPINION_NOTES or can(user, case, Action.READ_OPINION)


def available_actions(user: User, case: Case) -> frozenset[Action]:
    """Return the actions the user may take on the case now: their role's, in the case's status.

    Pages and templates offer exactly these; the role half is ``ALLOWED``, the status half is
    ``workflow.STATUS_GATES`` (the same table the services enforce).
    """
    from app.cases.workflow import status_allows  # workflow imports Action from this module

    role = role_of(user, case)
    if role is None:
        return frozenset()
    return frozenset(a for a in ALLOWED[role] if status_allows(case, a))


def require(user: User, case_id: int, action: Action) -> Case:
    """Return the case if the user may take the action; raise NotFound or Forbidden otherwise."""
    case = db.session.get(Case, case_id)
    if case is None or role_of(user, case) is None:
        raise NotFound("case not found")
    if not can(user, case, action):
        raise Forbidden(f"your role on this case does not allow: {action.value}", {"action": action.value})
    return case


def _rollback_and_audit(user_id: int, case_id: int, action: str, exc: DomainError,
                        target: dict | None = None) -> None:
    """Audit a refusal as ``action`` (the caller reads the user's id first: the rollback expires the user).

    ``target`` names what in the case the request was about (see :func:`audit_target`)."""
    from app.audit import service as audit_log

    # Rolled back first: on SQLite the session's open read would block the audit row's own write.
    db.session.rollback()
    audit_log.record_outcome(user_id=user_id, case_id=case_id, action=action, status=exc.status,
                             detail={"error": exc.error, **(target or {})})


def _failed(user_id: int, case_id: int, action: str, exc: DomainError, *, audit_any: bool,
            target: dict | None = None) -> None:
    """Roll back a case route whose view failed; audit the failure as ``action`` if it is a refusal
    (404/403), or whatever it is if ``audit_any``."""
    from app.audit.service import REFUSED

    if audit_any or exc.status in REFUSED:
        _rollback_and_audit(user_id, case_id, action, exc, target)
    else:
        db.session.rollback()


def authorize_case(user: User, case_id: int, action: Action, *, audit: str,
                   target: dict | None = None) -> Case:
    """Return the case if the user may take the action; audit a refusal as ``audit`` and re-raise it."""
    try:
        return require(user, case_id, action)
    except DomainError as exc:
        _rollback_and_audit(user.id, case_id, audit, exc, target)
        raise


def audit_made(**ids: int) -> None:
    """Name in this case route's audit row what the view made (e.g. ``link_id`` of a new share link)."""
    g.audit_made = ids


def audit_target(url_ids: dict, made: dict | None = None) -> dict | None:
    """What a case route's audit row names besides the case: the ids in its URL (a link, an attachment,
    a participant, an annotation) and any a view reports it made (``made``, e.g. a new link's id).

    Only integer ids: a URL's text parts (a UID) are the caller's words and can be any length."""
    ids = {name: value for name, value in url_ids.items() if isinstance(value, int)}
    ids.update(made or {})
    return ids or None


def visible_case_filter(user: User, reach: Reach | None = None):
    """A SQL condition selecting the cases the user may see (mirrors role_of; a teaching viewer sees
    only the images of a published case, from the teaching collection, never the case in a list).

    The cases they take part in and the pools they coordinate (``reach``, looked up if not given)
    are written as values: an OR of plain indexed conditions lets PostgreSQL combine them (and a
    search's words and filters) in one bitmap scan, where a subquery would be checked row by row.
    """
    reach = reach or reach_of(user)
    return sa.or_(
        Case.owner_id == user.id,
        sa.and_(Case.status != "draft", sa.or_(Case.consultant_id == user.id, Case.id.in_(sorted(reach.participating)),
                                               Case.pool_id.in_(sorted(reach.pools)))),
    )


def role_filter(user: User, role: str, reach: Reach | None = None):
    """A SQL condition selecting the cases on which role_of gives the user ``role`` (owner, consultant
    or participant): the ladder's earlier rungs excluded, so each case is in exactly one of them."""
    reach = reach or reach_of(user)
    if role == OWNER:
        return Case.owner_id == user.id
    shared = sa.and_(Case.owner_id != user.id, Case.status != "draft")
    if role == CONSULTANT:
        return sa.and_(shared, Case.consultant_id == user.id)
    if role == PARTICIPANT:
        return sa.and_(shared, sa.or_(Case.consultant_id.is_(None), Case.consultant_id != user.id),
                       Case.id.in_(sorted(reach.participating)))
    raise ValueError(f"no list filter for the role {role!r}")


def opinion_readers_filter(user: User, reach: Reach | None = None):
    """A SQL condition selecting the cases whose reports and signed opinion the user may read: those
    on which role_filter gives them a role that ALLOWED grants READ_OPINION (not a triage coordinator)."""
    reach = reach or reach_of(user)
    return sa.or_(*(role_filter(user, role, reach) for role in ROLES if Action.READ_OPINION in ALLOWED[role]))


def case_ids_route(action: Action, *, audit: str):
    """Declare a hot case route, one a viewer calls hundreds of times (a series' frames).

    The check is case_route's, made from ids alone (:func:`require_ids`, one query): neither the
    case nor a token's user is loaded. The view receives ``case_id`` and ``user_id`` and logs its
    own reads; a refusal (404/403, of the check or of the view) is audited as ``audit``.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(case_id: int, **kwargs):
            from app.accounts.auth import login_manager, request_user_id

            user_id = request_user_id()
            if user_id is None:
                return login_manager.unauthorized()
            try:
                require_ids(user_id, case_id, action)
                return view(case_id=case_id, user_id=user_id, **kwargs)
            except DomainError as exc:
                _failed(user_id, case_id, audit, exc, audit_any=False)
                raise

        wrapper.case_action = action
        wrapper.requires_auth = True
        return wrapper

    return decorate


def case_route(action: Action, *, audit: str | None = None):
    """Declare a case route: login, access check for ``action``, then the audit row.

    The view receives the Case instead of its id. Denied attempts (404/403) are audited too.
    ``audit`` names the logged action (default: the endpoint name); "none" skips logging,
    for routes that log in their own aggregated way. The row's detail names the URL's other ids
    and any the view reported with :func:`audit_made`.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(case_id: int, **kwargs):
            from app.accounts.auth import login_manager
            from app.audit import service as audit_log

            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            name = audit or request.endpoint.split(".")[-1]
            target = audit_target(kwargs)
            case = authorize_case(current_user, case_id, action, audit=name, target=target)
            user_id = current_user.id  # read now: a view that commits expires the user (a reload to audit)
            try:
                response = view(case, **kwargs)
            except DomainError as exc:
                _failed(user_id, case_id, name, exc, audit_any=name != "none", target=target)
                raise
            if name != "none":
                status = response[1] if isinstance(response, tuple) else getattr(response, "status_code", 200)
                audit_log.record(user_id=user_id, case_id=case_id, action=name, status=status,
                                 detail=audit_target(kwargs, g.pop("audit_made", None)))
            return response

        wrapper.case_action = action
        wrapper.requires_auth = True
        return wrapper

    return decorate
