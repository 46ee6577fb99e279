"""Organizations: creating them, members, consortium institutions, routing rules, and the pool path
of a case (shared to a consortium or pool → assigned by a coordinator → back to the queue on decline)."""

from datetime import UTC, timedelta

import sqlalchemy as sa

from app.accounts.models import Institution, User
from app.cases import workflow
from app.cases.models import Case
from app.cases.permissions import Action
from app.cases.service import RESPONSE_TIME
from app.core.errors import BadRequest, Conflict, DomainError, NotFound
from app.core.time import utcnow
from app.extensions import db
from app.notifications.service import notify
from app.orgs import routing
from app.orgs.models import (
    POOL_KINDS,
    Availability,
    ConsortiumInstitution,
    Org,
    OrgMember,
    RoutingDecision,
    RoutingRule,
)
from app.orgs.permissions import MAX_ID, lineage, may_refer, role_in, root_of
from app.orgs.schemas import OrgCreate, OrgUpdate, RuleIn

URGENCY_ORDER = {"emergency": 0, "urgent": 1, "routine": 2}


class Unroutable(DomainError):
    status = 422
    error = "no routing rule matches"


# ---- orgs, members, institutions ------------------------------------------------------------

def _upsert(model, *, key: dict, values: dict):
    """Create the row with this key, or update its values; return (row, created)."""
    row = db.session.scalar(sa.select(model).filter_by(**key))
    created = row is None
    if created:
        row = model(**key, **values)
        db.session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    db.session.flush()
    return row, created


def _delete_one(model, missing: str, **key) -> None:
    """Delete the row with this key, or raise NotFound(missing)."""
    if any(v > MAX_ID for v in key.values()) or \
            db.session.execute(sa.delete(model).filter_by(**key)).rowcount == 0:
        raise NotFound(missing)


def create_org(*, data: OrgCreate) -> Org:
    """Create an org (the caller was authorised against the parent, or is a platform admin)."""
    if data.institution_id is not None and db.session.get(Institution, data.institution_id) is None:
        raise BadRequest("unknown institution", {"institution_id": data.institution_id})
    if data.kind == "department" and data.institution_id is None:
        raise BadRequest("a department belongs to one institution: give institution_id")
    if data.parent_id is not None and data.kind == "consortium":
        raise BadRequest("a consortium has no parent org")
    org = Org(kind=data.kind, name=data.name, institution_id=data.institution_id, parent_id=data.parent_id,
              due_hours=data.due_hours, services=data.services, name_peers_ok=data.name_peers_ok)
    db.session.add(org)
    db.session.flush()
    return org


def update_org(*, org: Org, data: OrgUpdate) -> Org:
    """Change an org's name, due hours per urgency, services or peer naming."""
    for name in ("name", "due_hours", "services", "name_peers_ok"):
        if name in data.model_fields_set:
            setattr(org, name, getattr(data, name))
    db.session.flush()
    return org


def members(org: Org) -> list[OrgMember]:
    """Return the org's members, coordinators and admins."""
    return list(db.session.scalars(sa.select(OrgMember).where(OrgMember.org_id == org.id).order_by(OrgMember.id)))


def institutions(org: Org) -> list[ConsortiumInstitution]:
    """Return a consortium's member institutions."""
    return list(db.session.scalars(sa.select(ConsortiumInstitution).where(ConsortiumInstitution.org_id == org.id)
                                   .order_by(ConsortiumInstitution.id)))


def children(org: Org) -> list[Org]:
    """Return the orgs directly under this one (a consortium's pools)."""
    return list(db.session.scalars(sa.select(Org).where(Org.parent_id == org.id).order_by(Org.id)))


def pools_under(org: Org) -> list[Org]:
    """Return the pools (departments, doctor groups) directly under an org."""
    return [c for c in children(org) if c.kind in POOL_KINDS]


def member_candidates(org: Org, *, limit: int = 500) -> list[User]:
    """Return the active doctors who could join the org: its institution's for a department, the
    consortium's institutions' for a consortium or a pool under one, else every doctor."""
    stmt = sa.select(User).where(User.active.is_(True), ~User.is_admin)
    root = root_of(org)
    if org.kind == "department":
        stmt = stmt.where(User.institution_id == org.institution_id)
    elif root.kind == "consortium":
        stmt = stmt.where(User.institution_id.in_(
            sa.select(ConsortiumInstitution.institution_id).where(ConsortiumInstitution.org_id == root.id)))
    return list(db.session.scalars(stmt.order_by(User.institution_id, User.name).limit(limit)))


def all_institutions() -> list[Institution]:
    """Return every institution, by name (what a consortium admin may add)."""
    return list(db.session.scalars(sa.select(Institution).order_by(Institution.name)))


def set_member(*, org: Org, user_id: int, role: str) -> tuple[OrgMember, bool]:
    """Add the user to the org with the role, or change their role; return (membership, created)."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        raise BadRequest("unknown user", {"user_id": user_id})
    if org.kind == "department" and user.institution_id != org.institution_id:
        raise BadRequest("a department's members work at its institution", {"user_id": user_id})
    return _upsert(OrgMember, key={"org_id": org.id, "user_id": user_id}, values={"role": role})


def remove_member(*, org: Org, user_id: int, actor: User) -> None:
    """Remove the user from the org; what the role gave them (a queue, pooled cases) ends at once.

    The pool's cases designated to them and not yet accepted go back to the pool's queue: nobody
    else could move them (the coordinators cannot reassign a designated case, only the specialist
    can decline it). A case they accepted stays theirs: the consultation is under way.
    """
    _delete_one(OrgMember, "member not found", org_id=org.id, user_id=user_id)
    waiting = db.session.scalars(sa.select(Case).where(Case.pool_id == org.id, Case.consultant_id == user_id,
                                                       Case.status == "submitted").order_by(Case.id)).all()
    for case in waiting:
        _release(case, pool=org, specialist=case.consultant, actor=actor)


def set_institution(*, org: Org, institution_id: int, side: str) -> tuple[ConsortiumInstitution, bool]:
    """Add an institution to a consortium on a side, or change its side; return (row, created)."""
    if org.kind != "consortium":
        raise BadRequest("only a consortium has member institutions", {"kind": org.kind})
    if db.session.get(Institution, institution_id) is None:
        raise BadRequest("unknown institution", {"institution_id": institution_id})
    return _upsert(ConsortiumInstitution, key={"org_id": org.id, "institution_id": institution_id},
                   values={"side": side})


def remove_institution(*, org: Org, institution_id: int) -> None:
    """Take an institution out of a consortium."""
    _delete_one(ConsortiumInstitution, "institution not in this consortium", org_id=org.id,
                institution_id=institution_id)


# ---- routing rules --------------------------------------------------------------------------

def rules(org: Org) -> list[RoutingRule]:
    """Return a consortium's routing rules in the order they are tried."""
    return list(db.session.scalars(sa.select(RoutingRule).where(RoutingRule.consortium_id == org.id)
                                   .order_by(RoutingRule.fallback, RoutingRule.priority)))


def add_rule(*, org: Org, data: RuleIn) -> RoutingRule:
    """Add a routing rule to a consortium: specialty (and urgency) → a pool under it or a specialist."""
    if org.kind != "consortium":
        raise BadRequest("routing rules belong to a consortium", {"kind": org.kind})
    if data.target_org_id is not None:
        target = db.session.get(Org, data.target_org_id)
        if target is None or target.kind not in POOL_KINDS or root_of(target).id != org.id:
            raise BadRequest("the target must be a pool under this consortium", {"target_org_id": data.target_org_id})
    else:
        user = db.session.get(User, data.target_user_id)
        if user is None or not user.active or user.is_admin:
            raise BadRequest("unknown specialist", {"target_user_id": data.target_user_id})
    if db.session.scalar(sa.select(RoutingRule.id).where(RoutingRule.consortium_id == org.id,
                                                         RoutingRule.priority == data.priority)) is not None:
        raise Conflict("a rule with this priority exists", {"priority": data.priority})
    rule = RoutingRule(consortium_id=org.id, **data.model_dump())
    db.session.add(rule)
    db.session.flush()
    return rule


def delete_rule(*, org: Org, rule_id: int) -> None:
    """Delete a consortium's routing rule (decisions made by it keep their reason text)."""
    _delete_one(RoutingRule, "rule not found", consortium_id=org.id, id=rule_id)


# ---- the pool path of a case ----------------------------------------------------------------

def response_time(pool: Org | None, urgency: str) -> timedelta:
    """The time an opinion is due after sharing: the pool's or its consortium's hours, else the default."""
    for org in lineage(pool) if pool is not None else []:
        hours = (org.due_hours or {}).get(urgency)
        if hours:
            return timedelta(hours=hours)
    return RESPONSE_TIME[urgency]


def _decide(case: Case, *, kind: str, actor: User, reason: str, org: Org | None = None, pool: Org | None = None,
            rule: RoutingRule | None = None, chosen: User | None = None, suggestions: list | None = None):
    db.session.add(RoutingDecision(case_id=case.id, kind=kind, org_id=org.id if org else None,
                                   pool_id=pool.id if pool else None, rule_id=rule.id if rule else None,
                                   chosen_user_id=chosen.id if chosen else None, reason=reason,
                                   suggestions=suggestions, actor_id=actor.id))


def _route(org: Org, case: Case) -> routing.Route:
    """Where a case sent to the org goes: through the consortium's rules, or straight into the pool."""
    if org.kind == "consortium":
        route = routing.pick(org, case)
        if route is None:
            specialty = case.specialty or "(none)"
            raise Unroutable(f"no routing rule of {org.name} matches specialty {specialty}",
                             {"specialty": case.specialty, "urgency": case.urgency, "org_id": org.id})
        return route
    if not routing.watched_for(org, case):
        raise Unroutable(f"{org.name} has no coordinator to triage the case", {"org_id": org.id})
    return routing.Route(pool=org, reason=f"→ {org.name} (shared to the pool)")


def _into_place(case: Case, route: routing.Route, *, actor: User) -> None:
    """Tell the people concerned that the case reached its pool (coordinators) or specialist."""
    if route.pool is not None:
        notify(users=routing.coordinators(route.pool), case_id=case.id, kind="pool_queued", actor=actor)
    else:
        notify(users=[route.specialist], case_id=case.id, kind="shared", actor=actor)


def share_to_org(*, case: Case, actor: User, org_id: int, message: str = "") -> Case:
    """Share a case with a consortium (its rules pick the pool) or a pool (its queue): status submitted."""
    org = db.session.get(Org, org_id)
    if org is None or not may_refer(actor, org):
        raise BadRequest("unknown org", {"org_id": org_id})
    route = _route(org, case)
    now = utcnow()
    data = {"org_id": org.id, "org_name": org.name, "reason": route.reason,
            "rule_id": route.rule.id if route.rule else None}
    values = {"submitted_at": now, "due_at": now + response_time(route.pool or org, case.urgency),
              "pool_id": route.pool.id if route.pool else None,
              "consultant_id": route.specialist.id if route.specialist else None}
    if route.pool is not None:
        data.update(pool_id=route.pool.id, pool_name=route.pool.name)
    else:
        data.update(specialist_id=route.specialist.id, specialist_name=route.specialist.name)
    workflow.apply(case, Action.SHARE, actor=actor, note=message or None, data=data, values=values)
    _decide(case, kind="routed", actor=actor, reason=route.reason, org=org, pool=route.pool, rule=route.rule,
            chosen=route.specialist)
    _into_place(case, route, actor=actor)
    return case


def _pool(case: Case) -> Org:
    pool = db.session.get(Org, case.pool_id) if case.pool_id else None
    if pool is None:
        raise Conflict("the case is not in a pool")
    return pool


def assign(*, case: Case, actor: User, specialist_id: int, note: str = "") -> Case:
    """A pool coordinator designates the specialist: consultant set, still submitted; one winner."""
    pool = _pool(case)
    if case.consultant_id is not None:
        raise Conflict("already assigned", {"consultant_id": case.consultant_id})
    specialist = db.session.get(User, specialist_id)
    if specialist is None or role_in(specialist_id, pool.id) is None:
        raise BadRequest("not a member of this pool", {"specialist_id": specialist_id})
    why = routing.unavailable_reason(specialist, case)
    if why is not None and why != "overloaded":  # the coordinator may knowingly load someone busy
        raise Conflict(f"the specialist cannot take it: {why}", {"specialist_id": specialist_id})
    shown = [{"user_id": r.user.id, "name": r.user.name, "score": r.score, "reasons": r.reasons}
             for r in routing.suggest(pool, case)]
    workflow.apply(case, Action.ASSIGN, actor=actor, note=note or None,
                   data={"specialist_id": specialist.id, "specialist_name": specialist.name,
                         "pool_id": pool.id, "pool_name": pool.name, "suggestions": shown},
                   values={"consultant_id": specialist.id},
                   where=(Case.consultant_id.is_(None), Case.pool_id == pool.id))
    _decide(case, kind="assigned", actor=actor, pool=pool, chosen=specialist, suggestions=shown,
            reason=f"{pool.name} → {specialist.name} (assigned by {actor.name})")
    notify(users=[specialist], case_id=case.id, kind="assigned", actor=actor)
    notify(users=[case.owner], case_id=case.id, kind="routed", actor=actor)
    return case


def _release(case: Case, *, pool: Org, specialist: User, actor: User) -> None:
    """Take a designated, not yet accepted case from a specialist who left the pool: back to its queue."""
    workflow.apply(case, Action.RETURN_TO_POOL, actor=actor,
                   data={"pool_id": pool.id, "pool_name": pool.name, "left_pool": specialist.name},
                   values={"consultant_id": None}, where=(Case.consultant_id == specialist.id, Case.pool_id == pool.id))
    _decide(case, kind="returned", actor=actor, pool=pool, chosen=specialist,
            reason=f"{specialist.name} left {pool.name} → back to the queue")
    notify(users=routing.coordinators(pool), case_id=case.id, kind="pool_queued", actor=actor)
    notify(users=[specialist], case_id=case.id, kind="removed", actor=actor)


def return_to_pool(*, case: Case, actor: User, reason: str = "") -> Case:
    """The designated specialist declines a pooled case: it waits in the pool's queue again."""
    pool = _pool(case)
    workflow.apply(case, Action.RETURN_TO_POOL, actor=actor, note=reason or None,
                   data={"pool_id": pool.id, "pool_name": pool.name, "declined_by": actor.name},
                   values={"consultant_id": None},
                   where=(Case.consultant_id == actor.id,))
    _decide(case, kind="returned", actor=actor, pool=pool, chosen=actor,
            reason=f"{actor.name} declined → back to {pool.name}" + (f": {reason}" if reason else ""))
    notify(users=routing.coordinators(pool), case_id=case.id, kind="pool_queued", actor=actor)
    notify(users=[case.owner], case_id=case.id, kind="declined", actor=actor)
    return case


def reroute(*, case: Case, actor: User, org_id: int, note: str = "") -> Case:
    """Send a pooled case to another pool (or back through the consortium's rules), no resubmission."""
    current = _pool(case)
    target = db.session.get(Org, org_id)
    if target is None or root_of(target).id != root_of(current).id:
        raise BadRequest("the target must be a pool of the same consortium", {"org_id": org_id})
    route = _route(target, case)
    if route.pool is not None and route.pool.id == current.id:
        raise Conflict("the case is already in this pool", {"pool_id": current.id})
    dropped = case.consultant
    reason = f"{current.name} {route.reason}"
    data = {"from_pool_id": current.id, "from_pool_name": current.name, "org_id": target.id, "reason": reason,
            "pool_id": route.pool.id if route.pool else None,
            "specialist_id": route.specialist.id if route.specialist else None}
    # Still where it was and with whom it was (an assignment landing first is not dropped unseen).
    held = Case.consultant_id.is_(None) if dropped is None else Case.consultant_id == dropped.id
    workflow.apply(case, Action.REROUTE, actor=actor, note=note or None, data=data,
                   values={"pool_id": route.pool.id if route.pool else None,
                           "consultant_id": route.specialist.id if route.specialist else None},
                   where=(Case.pool_id == current.id, held))
    _decide(case, kind="rerouted", actor=actor, reason=reason, org=target, pool=route.pool, rule=route.rule,
            chosen=route.specialist)
    _into_place(case, route, actor=actor)
    if dropped is not None and dropped.id != (route.specialist.id if route.specialist else None):
        notify(users=[dropped], case_id=case.id, kind="removed", actor=actor)
    notify(users=[case.owner], case_id=case.id, kind="routed", actor=actor)
    return case


def decisions(case: Case) -> list[RoutingDecision]:
    """Return the case's routing decisions, oldest first."""
    return list(db.session.scalars(sa.select(RoutingDecision).where(RoutingDecision.case_id == case.id)
                                   .order_by(RoutingDecision.id)))


def queue(org: Org) -> list[tuple[Case, list]]:
    """Return the pool's cases waiting for triage, by urgency then due time, each with suggestions."""
    waiting = sa.select(Case).where(Case.pool_id == org.id, Case.status == "submitted", Case.consultant_id.is_(None))
    if db.session.scalar(waiting.with_only_columns(Case.id).limit(1)) is None:
        return []
    # The members, their load and track records: once for the whole queue, and before the cases are
    # loaded (reading the metrics may commit, which would expire them).
    ready = routing.available(org)
    cases = db.session.scalars(waiting).all()
    cases = sorted(cases, key=lambda c: (URGENCY_ORDER.get(c.urgency, 9), c.due_at or utcnow(), c.id))
    return [(c, routing.suggest(org, c, ready=ready)) for c in cases]


def workload(org: Org) -> tuple[list[Case], list[tuple[OrgMember, int]]]:
    """Return a group's open cases (in its pool or held by its members) and each member's open count."""
    people = members(org)
    ids = [m.user_id for m in people]
    cases = list(db.session.scalars(sa.select(Case).where(
        Case.status.in_(workflow.OPEN_STATUSES),
        sa.or_(Case.pool_id == org.id, Case.consultant_id.in_(ids))).order_by(Case.due_at, Case.id)))
    counts: dict[int, int] = {}
    for c in cases:
        if c.consultant_id is not None:
            counts[c.consultant_id] = counts.get(c.consultant_id, 0) + 1
    return cases, [(m, counts.get(m.user_id, 0)) for m in people]


# ---- availability ---------------------------------------------------------------------------

def set_away(*, user: User, until, note: str = "") -> Availability:
    """Mark the user away until a time (None: available again)."""
    if until is not None and until.tzinfo is not None:
        until = until.astimezone(UTC).replace(tzinfo=None)  # stored as naive UTC like every timestamp
    row = db.session.get(Availability, user.id)
    if row is None:
        row = Availability(user_id=user.id)
        db.session.add(row)
    row.away_until, row.note = until, note
    db.session.flush()
    return row


def away_of(user: User) -> Availability | None:
    """Return the user's away record, if any."""
    return db.session.get(Availability, user.id)


def away_now(user: User):
    """Return until when the user is away, or None if they are available now."""
    row = away_of(user)
    return row.away_until if row is not None and row.away_until and row.away_until > utcnow() else None

