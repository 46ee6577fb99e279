"""The demo consortium of the public contract (part of ``seed-demo``), created idempotently."""

import sqlalchemy as sa

from app.accounts.models import Institution, User
from app.extensions import db
from app.orgs.models import ConsortiumInstitution, Org, OrgMember, RoutingRule
from app.orgs.permissions import institution_side

CONSORTIUM = "湘江妇儿医联体"
POOL = "妇科会诊组"
# institution name → side
SIDES = {"湘江大学附属第一医院": "provider", "云溪县人民医院": "requester", "湖南省妇幼保健院": "requester"}
# email → role in the pool, or in the consortium for its admin
POOL_PEOPLE = {"coordinator@demo.huizhen": "coordinator", "gyn@demo.huizhen": "member",
               "gyn2@demo.huizhen": "member"}
CONSORTIUM_PEOPLE = {"consortium@demo.huizhen": "admin"}


def _org(*, kind: str, name: str, parent_id: int | None, **settings) -> tuple[Org, bool]:
    org = db.session.scalar(sa.select(Org).where(Org.kind == kind, Org.name == name))
    if org is not None:
        return org, False
    org = Org(kind=kind, name=name, parent_id=parent_id, **settings)
    db.session.add(org)
    db.session.flush()
    return org, True


def _members(org: Org, people: dict[str, str]) -> None:
    for email, role in people.items():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        exists = db.session.scalar(sa.select(OrgMember.id).where(OrgMember.org_id == org.id,
                                                                 OrgMember.user_id == user.id))
        if exists is None:
            db.session.add(OrgMember(org_id=org.id, user_id=user.id, role=role))


def seed_consortium() -> dict[str, int]:
    """Create the demo consortium, its institutions, its gynecology pool and routing rule if missing."""
    consortium, created = _org(kind="consortium", name=CONSORTIUM, parent_id=None,
                               due_hours={"emergency": 6, "urgent": 24, "routine": 72},
                               services=["remote_imaging", "remote_pathology", "mdt", "consultation"])
    for name, side in SIDES.items():
        inst = db.session.scalar(sa.select(Institution).where(Institution.name == name))
        if institution_side(consortium, inst.id) is None:
            db.session.add(ConsortiumInstitution(org_id=consortium.id, institution_id=inst.id, side=side))
    pool, pool_created = _org(kind="doctor_group", name=POOL, parent_id=consortium.id)
    _members(consortium, CONSORTIUM_PEOPLE)
    _members(pool, POOL_PEOPLE)
    if db.session.scalar(sa.select(RoutingRule.id).where(RoutingRule.consortium_id == consortium.id)) is None:
        db.session.add(RoutingRule(consortium_id=consortium.id, priority=1, specialty="gynecology",
                                   target_org_id=pool.id))
    db.session.flush()
    return {"orgs_created": int(created) + int(pool_created)}
