"""Postings and matching: rank counterpart postings and turn an accepted match into a consortium.

Matching scores a counterpart (the opposite kind, the same service, still open) out of 100:
specialty (20), capacity (15), region (15), level (10: a provider above the requester), the
provider's measured performance over the last twelve months (up to 10: the ten-point band of its
within-due share, from the same metric definitions as the dashboards), plus 30 for the service
itself. Every point comes with a reason the user can read.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from app.accounts.models import LEVELS, Institution, User
from app.core.errors import BadRequest, Conflict, Forbidden, NotFound
from app.core.time import utcnow
from app.extensions import db
from app.metrics.definitions import BY_CODE
from app.metrics.service import compute, shown, stat_of
from app.orgs.models import SERVICES as ORG_SERVICES
from app.orgs.models import ConsortiumInstitution, Org, OrgMember
from app.orgs.permissions import MAX_ID
from app.postings.models import Posting
from app.postings.schemas import PostingIn, PostingQuery

WITHIN_DUE = BY_CODE["within_due_pct"]
RANK = {level: len(LEVELS) - i for i, level in enumerate(LEVELS)}  # tertiary highest


@dataclass
class Match:
    posting: Posting
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def add(self, points: float, reason: str) -> None:
        self.score = round(self.score + points, 1)
        self.reasons.append(reason)


def _may_post_for(user: User, institution_id: int) -> bool:
    return user.is_admin or user.institution_id == institution_id


def create_posting(*, actor: User, data: PostingIn) -> Posting:
    """Post a need or an offer for the actor's institution."""
    if db.session.get(Institution, data.institution_id) is None:
        raise BadRequest("unknown institution", {"institution_id": data.institution_id})
    if not _may_post_for(actor, data.institution_id):
        raise Forbidden("only members of that institution may post for it")
    posting = Posting(**data.model_dump(), created_by_id=actor.id)
    db.session.add(posting)
    db.session.flush()
    return posting


def list_postings(*, query: PostingQuery) -> list[Posting]:
    """Return the open postings, newest first (filtered by kind, service, specialty)."""
    stmt = sa.select(Posting).where(Posting.state == "open")
    for column, value in ((Posting.kind, query.kind), (Posting.service, query.service),
                          (Posting.specialty, query.specialty)):
        if value is not None:
            stmt = stmt.where(column == value)
    return list(db.session.scalars(stmt.order_by(Posting.id.desc())))


def get_posting(posting_id: int) -> Posting:
    """Return the posting or raise NotFound."""
    posting = db.session.get(Posting, posting_id) if posting_id <= MAX_ID else None
    if posting is None:
        raise NotFound("posting not found")
    return posting


def _sides(a: Posting, b: Posting) -> tuple[Posting, Posting]:
    """(supply, demand) of a pair."""
    return (a, b) if a.kind == "supply" else (b, a)


def _province(region: str) -> str:
    return (region or "").split(" ")[0]


def matches(posting: Posting) -> list[Match]:
    """Rank the open counterpart postings of the same service, best first, each with its reasons."""
    candidates = list(db.session.scalars(sa.select(Posting).where(
        Posting.kind != posting.kind, Posting.service == posting.service, Posting.state == "open",
        Posting.institution_id != posting.institution_id).order_by(Posting.id)))
    providers = {_sides(posting, c)[0].institution_id for c in candidates}
    end = utcnow()
    measured = compute(level="institution", ids=sorted(providers), start=end - timedelta(days=365), end=end,
                       codes=[WITHIN_DUE.code])
    ranked = [_score(posting, c, measured) for c in candidates]
    return sorted(ranked, key=lambda m: (-m.score, m.posting.id))


def _score(posting: Posting, other: Posting, measured) -> Match:
    supply, demand = _sides(posting, other)
    m = Match(other)
    m.add(30, f"same service: {posting.service}")
    if supply.specialty and demand.specialty:
        if supply.specialty == demand.specialty:
            m.add(20, f"same specialty: {supply.specialty}")
        else:
            m.add(0, f"different specialty: {supply.specialty} offered, {demand.specialty} needed")
    else:
        m.add(10, "open to any specialty")
    if supply.capacity_per_month is None or demand.capacity_per_month is None:
        m.add(5, "capacity not stated")
    elif supply.capacity_per_month >= demand.capacity_per_month:
        m.add(15, f"capacity {supply.capacity_per_month}/month covers {demand.capacity_per_month}/month")
    else:
        m.add(15 * supply.capacity_per_month / max(demand.capacity_per_month, 1),
              f"capacity {supply.capacity_per_month}/month of {demand.capacity_per_month}/month needed")
    a, b = supply.institution, demand.institution
    if a.region and a.region == b.region:
        m.add(15, f"same region: {a.region}")
    elif _province(a.region) and _province(a.region) == _province(b.region):
        m.add(8, f"same province: {_province(a.region)}")
    else:
        m.add(0, "another region")
    if RANK[a.level] > RANK[b.level]:
        m.add(10, f"{a.level} provider for a {b.level} requester")
    elif a.level == b.level:
        m.add(4, f"both {a.level}")
    else:
        m.add(0, f"provider's level ({a.level}) is below the requester's ({b.level})")
    value = shown(WITHIN_DUE, stat_of(measured, (a.id,), WITHIN_DUE))
    if value is None:
        m.add(0, "no measured performance yet")
    else:
        low = performance_band(value)
        m.add(low / 10, f"provider answered {low}–{low + 10}% within the due time (last 12 months)")
    return m


def performance_band(value: float) -> int:
    """The ten-point band (its lower end, 0–90) a within-due share falls in.

    Matching shows a provider's performance to any other hospital. The provider's exact figures
    (the share and its n) are for the dashboards of the orgs it belongs to, where naming is its
    org's choice (``Org.name_peers_ok``); a counterpart sees only the band, in the reason and the score.
    """
    return min(int(value // 10) * 10, 90)


def accept_match(*, posting: Posting, other_id: int, actor: User) -> Org | None:
    """Accept a counterpart for the posting, on behalf of its institution.

    A match forms only once a member of each institution has accepted the other's posting:
    then both join the provider's consortium if the provider side's acceptor administers one,
    else a new consortium of the two that both acceptors administer, and both postings close.
    Until then the answer is None (waiting for the other side). Neither side can so put the
    other into a consortium, nor join one its admins did not choose.
    """
    if not _may_post_for(actor, posting.institution_id):
        raise Forbidden("only members of the posting's institution may accept a match")
    other = get_posting(other_id)
    if other.kind == posting.kind or other.service != posting.service or other.institution_id == posting.institution_id:
        raise BadRequest("not a counterpart of this posting", {"other_id": other_id})
    # Both rows locked in id order: two sides accepting at once see each other's acceptance.
    db.session.execute(sa.select(Posting.id).where(Posting.id.in_((posting.id, other.id)))
                       .order_by(Posting.id).with_for_update())
    db.session.refresh(posting)
    db.session.refresh(other)
    if posting.state != "open" or other.state != "open":
        raise Conflict("the posting is no longer open", {"states": [posting.state, other.state]})
    posting.accepted_other_id, posting.accepted_by_id = other.id, actor.id
    db.session.flush()
    if other.accepted_other_id != posting.id or other.accepted_by_id is None:
        return None
    supply, demand = _sides(posting, other)
    supply_actor, demand_actor = supply.accepted_by_id, demand.accepted_by_id
    org = db.session.scalar(
        sa.select(Org).join(ConsortiumInstitution, ConsortiumInstitution.org_id == Org.id)
        .join(OrgMember, OrgMember.org_id == Org.id)
        .where(Org.kind == "consortium", ConsortiumInstitution.institution_id == supply.institution_id,
               ConsortiumInstitution.side.in_(("provider", "both")),
               OrgMember.user_id == supply_actor, OrgMember.role == "admin")
        .order_by(Org.id).limit(1))
    if org is None:
        org = Org(kind="consortium", name=f"{supply.institution.name}–{demand.institution.name}"[:200],
                  services=[posting.service] if posting.service in ORG_SERVICES else None)
        db.session.add(org)
        db.session.flush()
        for user_id in dict.fromkeys((supply_actor, demand_actor)):
            db.session.add(OrgMember(org_id=org.id, user_id=user_id, role="admin"))
    present = set(db.session.scalars(sa.select(ConsortiumInstitution.institution_id).where(
        ConsortiumInstitution.org_id == org.id)))
    for inst_id, side in ((supply.institution_id, "provider"), (demand.institution_id, "requester")):
        if inst_id not in present:
            db.session.add(ConsortiumInstitution(org_id=org.id, institution_id=inst_id, side=side))
    # Both close in one conditional update, so a second acceptance of either loses.
    done = db.session.execute(sa.update(Posting).where(Posting.id.in_((posting.id, other.id)),
                                                       Posting.state == "open")
                              .values(state="matched", matched_org_id=org.id))
    if done.rowcount != 2:
        db.session.rollback()
        raise Conflict("the posting is no longer open")
    db.session.flush()
    return org
