"""Who may read an org's teaching collection, and so a published case's images: the one place.

Readers are the org's members (any role), the members of its parent (a pool's consortium), and for
a consortium the doctors of its member institutions. Platform admins are not readers by that
alone: they get no clinical content. The case permissions ask :func:`reads_images_of` for the
``teaching_viewer`` role, which opens the case's de-identified images and nothing else.

Who may turn a blinded peer review's disagreement into a teaching proposal is decided here too
(:func:`review_capacity`): the reviewed author (or the case's consultant), the reviewer, or a
coordinator of the pool the case was shared to or an admin of that pool or an org above it (its
consortium). Anyone else, platform admins included, is told the review does not exist. Each of
them learns nothing new about the others: the proposal carries the review's score and note, never
who reviewed, and the reviewer sees only the case's de-identified copy.
"""

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case
from app.extensions import db
from app.metrics.models import PeerReview
from app.orgs.models import ConsortiumInstitution, Org, OrgMember
from app.orgs.permissions import administered_orgs, coordinated_pools
from app.teaching.models import TeachingCase

AUTHOR, REVIEWER, COORDINATOR = "author", "reviewer", "coordinator"


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


def reads_copy(user: User, t: TeachingCase) -> bool:
    """Tell whether the user may read the teaching case's copy of the case (title, question, patient,
    studies, reports, opinion), given that they may see the teaching case at all.

    Once published, its readers may. Before that, and once refused, the referring doctor's consent
    has not let it out: only they (who decide) and those who read the case's opinion anyway (its
    consultant and participants) may. Someone who proposed it from a peer review without that (the
    blinded reviewer, a pool coordinator, a consortium admin) sees the proposal, not the case.
    """
    if t.state == "published":
        return True
    case = db.session.get(Case, t.case_id)
    if case is None:
        return False
    # The referring doctor is the case's owner, who reads its opinion as the others named above do.
    # Imported here: app.cases.permissions imports this module (for the teaching viewer's images).
    from app.cases.permissions import Action, can

    return can(user, case, Action.READ_OPINION)


def acting_orgs(user: User) -> set[int]:
    """The ids of the orgs whose cases' peer reviews the user may act on: the pools they coordinate,
    and the orgs they administer with every org below them (a consortium admin: its pools)."""
    return administered_orgs(user.id) | set(db.session.scalars(coordinated_pools(user.id)))


def review_capacity(user: User, review: PeerReview, case: Case, *, acting: set[int] | None = None) -> str | None:
    """Return how the user may turn the review into a teaching proposal (author, reviewer,
    coordinator), or None. Platform admins get no clinical content, so none. ``acting`` is
    :func:`acting_orgs` if the caller already has it (a list checks many reviews)."""
    if user.is_admin:
        return None
    if user.id == review.reviewer_id:
        return REVIEWER
    if user.id in (review.reviewee_id, case.consultant_id):
        return AUTHOR
    if case.pool_id is not None and case.pool_id in (acting_orgs(user) if acting is None else acting):
        return COORDINATOR
    return None


def reviews_for(user: User, acting: set[int]):
    """A SQL condition on PeerReview joined to Case: the reviews :func:`review_capacity` lets the
    user act on (the same rule, written as SQL for the list), given their :func:`acting_orgs`."""
    if user.is_admin:
        return sa.false()
    return sa.or_(PeerReview.reviewer_id == user.id, PeerReview.reviewee_id == user.id,
                  Case.consultant_id == user.id, Case.pool_id.in_(acting))
