"""Who may see or do what in an organization: the one place this is decided.

Case access stays in :mod:`app.cases.permissions`; it asks here only whether someone coordinates
the pool a case waits in. An org the caller may not see answers 404; an action their role in a
visible org does not allow answers 403. Platform admins count as admins of every org (they
manage orgs, but get no clinical content from that).
"""

from enum import StrEnum

import sqlalchemy as sa

from app.accounts.models import User
from app.core.errors import Forbidden, NotFound
from app.extensions import db
from app.orgs.models import ConsortiumInstitution, Org, OrgMember

MEMBER, COORDINATOR, ADMIN = "member", "coordinator", "admin"
MAX_ID = 2**31 - 1  # ids are 32-bit in the database; a larger one names nothing
MAX_DEPTH = 8  # orgs nest a few levels at most (consortium → hospital department → group)


class OrgAction(StrEnum):
    VIEW = "view"
    MANAGE = "manage"  # members, child orgs, institutions, routing rules: the org's admins
    TRIAGE = "triage"  # the queue: the org's coordinators
    WORKLOAD = "workload"  # the group's open cases: coordinators and admins of a department or group


def role_in(user_id: int, org_id: int) -> str | None:
    """Return the user's role in the org itself (not inherited), or None."""
    return db.session.scalar(sa.select(OrgMember.role).where(OrgMember.org_id == org_id,
                                                             OrgMember.user_id == user_id))


def coordinated_pools(user_id: int):
    """A SQL subquery of the ids of the orgs the user coordinates."""
    return sa.select(OrgMember.org_id).where(OrgMember.user_id == user_id, OrgMember.role == COORDINATOR)


def coordinates(user_id: int, org_id: int) -> bool:
    """Tell whether the user is a coordinator of the org (checked on every request, so removal bites at once)."""
    return role_in(user_id, org_id) == COORDINATOR


def lineage(org: Org) -> list[Org]:
    """Return the org and its parents, nearest first."""
    chain = [org]
    while chain[-1].parent_id is not None and len(chain) < MAX_DEPTH:
        chain.append(db.session.get(Org, chain[-1].parent_id))
    return chain


def root_of(org: Org) -> Org:
    """Return the outermost org above this one (its consortium, for a pool under one)."""
    return lineage(org)[-1]


def is_admin(user: User, org: Org) -> bool:
    """Tell whether the user administers the org: platform admin, or admin of it or of a parent."""
    if user.is_admin:
        return True
    ids = [o.id for o in lineage(org)]
    return db.session.scalar(sa.select(OrgMember.id).where(
        OrgMember.org_id.in_(ids), OrgMember.user_id == user.id, OrgMember.role == ADMIN).limit(1)) is not None


def administered_orgs(user_id: int) -> set[int]:
    """The ids of the orgs the user administers as a member (not as platform admin): those they are an
    admin of, with every org below them. :func:`is_admin` asks the same rule upwards, for one org."""
    ids = set(db.session.scalars(sa.select(OrgMember.org_id).where(OrgMember.user_id == user_id,
                                                                   OrgMember.role == ADMIN)))
    frontier = set(ids)
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        frontier = set(db.session.scalars(sa.select(Org.id).where(Org.parent_id.in_(frontier)))) - ids
        ids |= frontier
    return ids


def institution_side(org: Org, institution_id: int) -> str | None:
    """Return the institution's side in the consortium, or None if it is not a member."""
    return db.session.scalar(sa.select(ConsortiumInstitution.side).where(
        ConsortiumInstitution.org_id == org.id, ConsortiumInstitution.institution_id == institution_id))


def can_see(user: User, org: Org) -> bool:
    """Members (any role) of the org or of a parent, a consortium's institutions' doctors, platform admins."""
    if user.is_admin:
        return True
    ids = [o.id for o in lineage(org)]
    if db.session.scalar(sa.select(OrgMember.id).where(
            OrgMember.org_id.in_(ids), OrgMember.user_id == user.id).limit(1)) is not None:
        return True
    return org.kind == "consortium" and institution_side(org, user.institution_id) is not None


def can(user: User, org: Org, action: OrgAction) -> bool:
    """Tell whether the user may take the action in the org."""
    if action is OrgAction.VIEW:
        return can_see(user, org)
    if action is OrgAction.MANAGE:
        return is_admin(user, org)
    if action is OrgAction.TRIAGE:
        return coordinates(user.id, org.id)
    return org.kind != "consortium" and (coordinates(user.id, org.id) or is_admin(user, org))


def actions_in(user: User, org: Org) -> frozenset[str]:
    """Return the actions the user may take in the org (what the pages offer; they decide nothing)."""
    return frozenset(a.value for a in OrgAction if can(user, org, a))


def require_org(user: User, org_id: int, action: OrgAction) -> Org:
    """Return the org if the user may take the action; NotFound if they may not see it, else Forbidden."""
    org = db.session.get(Org, org_id) if org_id <= MAX_ID else None
    if org is None or not can_see(user, org):
        raise NotFound("org not found")
    if not can(user, org, action):
        raise Forbidden(f"your role in this org does not allow: {action.value}", {"action": action.value})
    return org


def visible_orgs(user: User, kind: str | None = None) -> list[Org]:
    """Return the orgs the user belongs to, and the consortia their institution is in (admins: all)."""
    stmt = sa.select(Org)
    if not user.is_admin:
        member_of = sa.select(OrgMember.org_id).where(OrgMember.user_id == user.id)
        institution_in = sa.select(ConsortiumInstitution.org_id).where(
            ConsortiumInstitution.institution_id == user.institution_id)
        stmt = stmt.where(sa.or_(Org.id.in_(member_of), Org.id.in_(institution_in)))
    if kind:
        stmt = stmt.where(Org.kind == kind)
    return list(db.session.scalars(stmt.order_by(Org.id)))


def may_refer(user: User, org: Org) -> bool:
    """Tell whether the user may send a case to the org: a member of it (or of a parent), or a
    doctor of a requesting institution of the consortium it is (or sits under)."""
    if any(role_in(user.id, o.id) is not None for o in lineage(org)):
        return True
    root = root_of(org)
    return root.kind == "consortium" and institution_side(root, user.institution_id) in ("requester", "both")
