"""Triage routing: which pool (or specialist) a consortium's rules pick, and whom to suggest.

Rules are tried by priority, regular rules before fallback ones. A rule naming a specialist who
is away, inactive or overloaded is skipped, and so is a pool nobody triages (no coordinator but
the case's owner): a case must never wait in a queue nobody watches. Every skip is written into
the reason.
"""

from dataclasses import dataclass, field

import sqlalchemy as sa

from app.accounts.models import User
from app.accounts.specialties import specialty_names
from app.cases import matching
from app.cases.models import Case
from app.cases.service import open_case_counts
from app.core.time import isoformat
from app.extensions import db
from app.orgs.models import Org, OrgMember, RoutingRule
from app.orgs.permissions import COORDINATOR, MEMBER

# A specialist with this many open cases is not suggested and is skipped by rules.
OVERLOADED_AT = 10
SUGGESTIONS = 5


@dataclass
class Route:
    """Where a case goes: a pool or a specialist, the rule that chose, and why (in words)."""

    pool: Org | None = None
    specialist: User | None = None
    rule: RoutingRule | None = None
    reason: str = ""
    skipped: list[str] = field(default_factory=list)


def coordinators(pool: Org) -> list[User]:
    """Return the pool's coordinators."""
    return list(db.session.scalars(sa.select(User).join(OrgMember, OrgMember.user_id == User.id).where(
        OrgMember.org_id == pool.id, OrgMember.role == COORDINATOR, User.active.is_(True)).order_by(User.id)))


def watched_for(pool: Org, case: Case) -> bool:
    """Tell whether someone can triage the case in the pool: a coordinator other than its owner
    (an owner may not assign their own case, so a queue only they watch would hold it forever)."""
    return any(u.id != case.owner_id for u in coordinators(pool))


def unavailable_reason(user: User, case: Case) -> str | None:
    """Say why the specialist cannot take the case now (away, inactive, overloaded, the owner), or None."""
    if not user.active or user.is_admin:
        return "inactive"
    if user.id == case.owner_id:
        return "the case's owner"
    away = matching.away_until([user.id]).get(user.id)
    if away is not None:
        return f"away until {isoformat(away)}"
    if open_case_counts([user.id]).get(user.id, 0) >= OVERLOADED_AT:
        return "overloaded"
    return None


def _label(specialty: str | None) -> str:
    return specialty_names(specialty)["zh"] if specialty else "未指定专科"


def _matches(rule: RoutingRule, case: Case) -> bool:
    return rule.specialty in (None, case.specialty) and rule.urgency in (None, case.urgency)


def pick(consortium: Org, case: Case) -> Route | None:
    """Apply the consortium's rules to the case; None when no usable rule matches."""
    rules = db.session.scalars(sa.select(RoutingRule).where(RoutingRule.consortium_id == consortium.id)
                               .order_by(RoutingRule.fallback, RoutingRule.priority)).all()
    skipped: list[str] = []
    for rule in rules:
        if not _matches(rule, case):
            continue
        if rule.target_user is not None:
            why = unavailable_reason(rule.target_user, case)
            target = rule.target_user.name
        else:
            why = None if watched_for(rule.target_org, case) else "no coordinator"
            target = rule.target_org.name
        if why:
            skipped.append(f"rule {rule.priority} skipped: {target} {why}")
            continue
        kind = "fallback rule" if rule.fallback else "rule"
        reason = f"{_label(case.specialty)} → {target} by {kind} {rule.priority}"
        if skipped:
            reason += " (" + "; ".join(skipped) + ")"
        return Route(pool=rule.target_org, specialist=rule.target_user, rule=rule, reason=reason, skipped=skipped)
    return None


@dataclass
class Available:
    """A pool's members who could take a case now, their open cases and their track records."""

    users: list[User]
    load: dict[int, int]
    records: dict[int, matching.TrackRecord]


def available(pool: Org) -> Available:
    """Return the pool's members who are not away nor overloaded, with what ranking them needs.

    A fixed number of queries however many members, so one call serves every case of a queue.
    """
    users = list(db.session.scalars(sa.select(User).join(OrgMember, OrgMember.user_id == User.id).where(
        OrgMember.org_id == pool.id, OrgMember.role == MEMBER, User.active.is_(True)).order_by(User.id)))
    away = matching.away_until([u.id for u in users])
    load = open_case_counts([u.id for u in users])
    users = [u for u in users if u.id not in away and load.get(u.id, 0) < OVERLOADED_AT]
    return Available(users, load, matching.records_for(users))


def candidates(pool: Org, case: Case, *, ready: Available | None = None) -> list[User]:
    """Return the pool's members who could take the case now (not away, not overloaded, not the owner)."""
    ready = ready or available(pool)
    return [u for u in ready.users if u.id != case.owner_id]


def suggest(pool: Org, case: Case, *, limit: int = SUGGESTIONS,
            ready: Available | None = None) -> list[matching.Ranked]:
    """Rank the pool's available members for the case, best first, with the reasons.

    ``ready`` (from :func:`available`) lets a queue rank all its cases from one read of the members.
    """
    ready = ready or available(pool)
    ranked = matching.rank(candidates(pool, case, ready=ready), specialty=case.specialty, workload=ready.load,
                           records=ready.records, away={})[:limit]  # the available members: none away
    for r in ranked:
        r.reasons.append("可接诊 (available)")
    return ranked
