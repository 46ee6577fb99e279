"""Who may read an org's teaching collection, and so a published case's images: the one place.

Readers are the org's members (any role), the members of its parent (a pool's consortium), and for
a consortium the doctors of its member institutions. Platform admins are not readers by that
alone: they get no clinical content. The case permissions ask :func:`reads_images_of` for the
``teaching_viewer`` role, which opens the case's de-identified images and nothing else.
"""

import sqlalchemy as sa

from app.accounts.models import User
from app.extensions import db
from app.orgs.models import ConsortiumInstitution, Org, OrgMember
from app.teaching.models import TeachingCase


def reader_orgs(user: User):
    """A SQL subquery of the ids of the orgs whose teaching collection the user may read."""
    member_of = sa.select(OrgMember.org_id).where(OrgMember.user_id == user.id)
    institution_in = sa.select(ConsortiumInstitution.org_id).where(
        ConsortiumInstitution.institution_id == user.institution_id)
    return sa.select(Org.id).where(sa.or_(Org.id.in_(member_of), Org.parent_id.in_(member_of),
                                          sa.and_(Org.kind == "consortium", Org.id.in_(institution_in))))


def published_for(user: User):
    """A SQL condition on TeachingCase: published in a collection the user may read."""
    return sa.and_(TeachingCase.state == "published", TeachingCase.org_id.in_(reader_orgs(user)))


def reads_images_of(user: User, case_id: int) -> bool:
    """Tell whether the case is published in a teaching collection the user may read."""
    return db.session.scalar(sa.select(TeachingCase.id).where(
        TeachingCase.case_id == case_id, published_for(user)).limit(1)) is not None
