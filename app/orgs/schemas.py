"""Request bodies and JSON forms of organizations, routing rules and routing decisions."""

from datetime import UTC, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator

from app.accounts.models import User
from app.accounts.schemas import user_json
from app.accounts.specialties import SPECIALTIES
from app.core.schemas import Schema
from app.core.time import isoformat
from app.extensions import db
from app.orgs.models import Org, RoutingDecision, RoutingRule

# Ids as the database stores them (32-bit integers); larger numbers name nothing.
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Kind = Literal["department", "doctor_group", "consortium"]
Urgency = Literal["routine", "urgent", "emergency"]
Service = Literal["remote_imaging", "remote_pathology", "mdt", "consultation"]
DueHours = dict[Urgency, Annotated[int, Field(ge=1, le=24 * 365)]]


def _known_specialty(v: str | None) -> str | None:
    if v is not None and v not in SPECIALTIES:
        raise ValueError(f"unknown specialty {v!r}")
    return v


class OrgQuery(Schema):
    kind: Kind | None = None


class OrgCreate(Schema):
    kind: Kind
    name: str = Field(min_length=1, max_length=200)
    institution_id: Id | None = None
    parent_id: Id | None = None
    due_hours: DueHours | None = None
    services: list[Service] | None = Field(default=None, max_length=len(Service.__args__))
    name_peers_ok: bool = False


class OrgUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    due_hours: DueHours | None = None
    services: list[Service] | None = Field(default=None, max_length=len(Service.__args__))
    name_peers_ok: bool | None = None


class MemberIn(Schema):
    user_id: Id
    role: Literal["member", "coordinator", "admin"] = "member"


class InstitutionIn(Schema):
    institution_id: Id
    side: Literal["provider", "requester", "both"]


class RuleIn(Schema):
    priority: int = Field(ge=0, le=100_000)
    specialty: str | None = Field(default=None, max_length=50)
    urgency: Urgency | None = None
    target_org_id: Id | None = None
    target_user_id: Id | None = None
    fallback: bool = False

    @field_validator("specialty")
    @classmethod
    def _specialty(cls, v):
        return _known_specialty(v)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.target_org_id is None) == (self.target_user_id is None):
            raise ValueError("give exactly one of target_org_id (a pool) or target_user_id (a specialist)")
        return self


class AssignIn(Schema):
    specialist_id: Id
    note: str = Field(default="", max_length=4000)


class RerouteIn(Schema):
    org_id: Id
    note: str = Field(default="", max_length=4000)


# Away periods end within these years: past them a time zone shift leaves the calendar (OverflowError).
AWAY_YEARS = (1900, 2999)


class AwayIn(Schema):
    until: datetime | None = None  # None: available again; stored as naive UTC like every timestamp
    note: str = Field(default="", max_length=200)

    @field_validator("until")
    @classmethod
    def _naive_utc_within_the_calendar(cls, v):
        if v is None:
            return v
        if not AWAY_YEARS[0] <= v.year <= AWAY_YEARS[1]:
            raise ValueError(f"must be between the years {AWAY_YEARS[0]} and {AWAY_YEARS[1]}")
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo is not None else v


def pool_ref(pool_id: int | None) -> dict | None:
    """Serialise the pool a case waits in as {"id", "name"}, or None."""
    if pool_id is None:
        return None
    pool = db.session.get(Org, pool_id)
    return None if pool is None else {"id": pool.id, "name": pool.name}


def pool_refs(pool_ids) -> dict[int, dict]:
    """pool_ref for many pools at once (one query), by pool id; unknown ids are left out."""
    ids = {i for i in pool_ids if i is not None}
    if not ids:
        return {}
    rows = db.session.execute(sa.select(Org.id, Org.name).where(Org.id.in_(sorted(ids))))
    return {pool_id: {"id": pool_id, "name": name} for pool_id, name in rows}


def consortium_form(sides: list[str]) -> str | None:
    """The consortium's form from its institutions' sides: 1-1, 1-n, n-1 or n-n (both counts on each side)."""
    providers = sum(s in ("provider", "both") for s in sides)
    requesters = sum(s in ("requester", "both") for s in sides)
    if not providers or not requesters:
        return None
    return f"{'1' if providers == 1 else 'n'}-{'1' if requesters == 1 else 'n'}"


def org_json(org: Org, *, members: list, institutions: list, children: list[Org]) -> dict:
    """Serialise an org as the contract's org object (plus its settings and child orgs)."""
    return {
        "id": org.id,
        "kind": org.kind,
        "name": org.name,
        "institution": None if org.institution is None else {"id": org.institution.id,
                                                             "name": org.institution.name},
        "parent_id": org.parent_id,
        "members": [{"user": user_json(m.user), "role": m.role} for m in members],
        "institutions": [{"id": ci.institution.id, "name": ci.institution.name, "level": ci.institution.level,
                          "side": ci.side} for ci in institutions],
        "form": consortium_form([ci.side for ci in institutions]) if org.kind == "consortium" else None,
        "due_hours": org.due_hours,
        "services": org.services,
        "name_peers_ok": org.name_peers_ok,
        "children": [{"id": c.id, "kind": c.kind, "name": c.name} for c in children],
    }


def rule_json(rule: RoutingRule) -> dict:
    """Serialise a routing rule."""
    return {
        "id": rule.id, "priority": rule.priority, "specialty": rule.specialty, "urgency": rule.urgency,
        "target_org": None if rule.target_org is None else {"id": rule.target_org.id, "name": rule.target_org.name},
        "target_user": None if rule.target_user is None else user_json(rule.target_user),
        "fallback": rule.fallback,
    }


def _person(user_id: int | None) -> dict | None:
    user = db.session.get(User, user_id) if user_id is not None else None
    return None if user is None else {"id": user.id, "name": user.name}


def decision_json(d: RoutingDecision) -> dict:
    """Serialise a routing decision, with the suggestions that were shown and who decided and was chosen."""
    return {"id": d.id, "kind": d.kind, "at": isoformat(d.at), "org": pool_ref(d.org_id), "pool": pool_ref(d.pool_id),
            "rule_id": d.rule_id, "chosen_user_id": d.chosen_user_id, "reason": d.reason,
            "suggestions": d.suggestions or [], "actor_id": d.actor_id,
            "actor": _person(d.actor_id), "chosen": _person(d.chosen_user_id)}


def suggestion_json(ranked) -> dict:
    """Serialise a ranked specialist as a queue suggestion."""
    return {"specialist": user_json(ranked.user), "score": ranked.score, "open_cases": ranked.open_cases,
            "reasons": ranked.reasons, "track_record": ranked.stats.metrics_json()}


def workload_json(cases: list, people: list, *, viewer: User) -> dict:
    """Serialise a group's workload (``service.workload``) for the viewer, as its API and its page show it.

    Who holds what is the view's point; a case's title (clinical, sometimes a name) only to those who
    may open the case: a member's cases held elsewhere are not the coordinator's to read.
    """
    # Imported here: the case modules import this one (pool_ref) when they load.
    from app.cases.permissions import roles_of
    from app.cases.service import is_overdue

    roles = roles_of(viewer, cases)
    return {
        "items": [{"id": c.id, "title": c.title if roles.get(c.id) else None, "visible": bool(roles.get(c.id)),
                   "status": c.status, "urgency": c.urgency,
                   "due_at": isoformat(c.due_at), "overdue": is_overdue(c), "pool": pool_ref(c.pool_id),
                   "holder": user_json(c.consultant) if c.consultant else None} for c in cases],
        "members": [{"user": user_json(m.user), "role": m.role, "open_cases": n} for m, n in people],
    }
