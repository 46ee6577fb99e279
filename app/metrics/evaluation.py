"""Doctor evaluation (医师评议) and blinded peer review of signed opinions (RADPEER-style).

A doctor's evaluation sets their metrics against two peer groups: the other members of their
pools, and the doctors of their specialty. They see their own; the coordinators of their pools and
the admins of the orgs above them (consortium admins) see it too; anyone else gets the public
profile only (answered cases, median response, mean rating), suppressed below the minimum n.

Peer review is blinded both ways: the reviewer reads a colleague's signed opinion without its
author's name, and the author sees counts, never who reviewed. A disagreement (minor or major)
must come with a teaching note.
"""

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case, Opinion, Participant
from app.core.errors import BadRequest, Conflict, NotFound
from app.extensions import db
from app.metrics.dashboard import Period, metric_value
from app.metrics.definitions import BY_CODE, METRICS
from app.metrics.models import PeerReview
from app.metrics.service import compute, shown, stat_of
from app.orgs.models import ConsortiumInstitution, Org, OrgMember
from app.orgs.permissions import MAX_ID, can_see, coordinates, is_admin

PUBLIC = ("cases_received", "median_hours_to_opinion", "mean_rating")


def _pools_of(user_id: int) -> list[Org]:
    return list(db.session.scalars(sa.select(Org).join(OrgMember, OrgMember.org_id == Org.id).where(
        OrgMember.user_id == user_id, Org.kind != "consortium")))


def may_see_full(viewer: User, subject: User) -> bool:
    """The doctor, their pools' coordinators, admins of those pools or of the orgs above, platform admins."""
    if viewer.is_admin or viewer.id == subject.id:
        return True
    if any(coordinates(viewer.id, pool.id) or is_admin(viewer, pool) for pool in _pools_of(subject.id)):
        return True
    # Admins of a consortium the doctor's institution belongs to.
    consortia = sa.select(ConsortiumInstitution.org_id).where(
        ConsortiumInstitution.institution_id == subject.institution_id)
    admin_of = sa.select(OrgMember.id).where(OrgMember.user_id == viewer.id, OrgMember.role == "admin",
                                             OrgMember.org_id.in_(consortia)).limit(1)
    return db.session.scalar(admin_of) is not None


def evaluation(*, viewer: User, subject: User, span: Period) -> dict:
    """The doctor's evaluation as the viewer may see it: full, or the public profile."""
    start, end = span.bounds
    user = {"id": subject.id, "name": subject.name, "specialty": subject.specialty}
    period = {"from": span.start.isoformat(), "to": span.end.isoformat()}
    if not may_see_full(viewer, subject):
        own = compute(level="doctor", ids=[subject.id], start=start, end=end, codes=list(PUBLIC))
        return {"user": user, "period": period, "scope": "public",
                "public": {code: shown(BY_CODE[code], stat_of(own, (subject.id,), BY_CODE[code])) for code in PUBLIC}}
    pools = {pool: set(db.session.scalars(sa.select(OrgMember.user_id).where(
        OrgMember.org_id == pool.id, OrgMember.role != "coordinator"))) for pool in _pools_of(subject.id)}
    pool_peers = sorted(set().union(*pools.values()) - {subject.id})
    specialty_peers = list(db.session.scalars(sa.select(User.id).where(
        User.specialty == subject.specialty, User.id != subject.id, ~User.is_admin).order_by(User.id).limit(200)))
    # Peers the viewer reads one by one (on a pool dashboard they may open; a platform admin, all);
    # the others are compared only when enough of them are (dashboard.MIN_UNSEEN_PEERS).
    seen = set().union(*(members for pool, members in pools.items() if can_see(viewer, pool)))
    if viewer.is_admin:
        seen |= set(specialty_peers)
    stats = compute(level="doctor", ids=sorted({subject.id, *pool_peers, *specialty_peers}), start=start, end=end)
    groups = {"pool": pool_peers, "specialty": specialty_peers}
    return {
        "user": user, "period": period, "scope": "full",
        "against": {name: [metric_value(m, stat_of(stats, (subject.id,), m),
                                        [(p, stat_of(stats, (p,), m)) for p in ids], days=span.days, names={},
                                        unseen=frozenset(ids) - seen)
                           for m in METRICS] for name, ids in groups.items()},
        "peer_review": peer_review_summary(subject.id),
    }


def peer_review_summary(user_id: int) -> dict:
    """How the doctor's signed opinions fared in blinded peer review."""
    counts = dict(db.session.execute(sa.select(PeerReview.score, sa.func.count()).where(
        PeerReview.reviewee_id == user_id).group_by(PeerReview.score)).all())
    n = sum(counts.values())
    return {"n": n, **{s: counts.get(s, 0) for s in ("agree", "minor", "major")},
            "agreement_pct": round(100 * counts.get("agree", 0) / n, 1) if n else None}


def _eligible_opinion(reviewer: User, case: Case | None) -> Opinion | None:
    """The case's latest signed opinion if the reviewer may review it blind, else None."""
    if case is None or reviewer.is_admin or reviewer.id in (case.owner_id, case.consultant_id):
        return None
    opinion = db.session.scalar(sa.select(Opinion).where(Opinion.case_id == case.id, Opinion.state == "signed")
                                .order_by(Opinion.version.desc()).limit(1))
    if opinion is None or opinion.author_id == reviewer.id or opinion.author.specialty != reviewer.specialty:
        return None
    on_case = db.session.scalar(sa.select(Participant.id).where(Participant.case_id == case.id,
                                                                Participant.user_id == reviewer.id))
    return None if on_case is not None else opinion


def next_for_review(*, reviewer: User) -> dict | None:
    """A same-specialty colleague's signed opinion the reviewer has not reviewed, without its author."""
    if reviewer.is_admin:
        return None  # the platform's administrators review no opinion (review() refuses them too)
    author = sa.orm.aliased(User)
    reviewed = sa.select(PeerReview.opinion_id).where(PeerReview.reviewer_id == reviewer.id)
    on_case = sa.select(Participant.case_id).where(Participant.user_id == reviewer.id)
    opinion = db.session.scalar(
        sa.select(Opinion).join(author, author.id == Opinion.author_id).join(Case, Case.id == Opinion.case_id).where(
            Opinion.state == "signed", author.specialty == reviewer.specialty, Opinion.author_id != reviewer.id,
            Case.owner_id != reviewer.id, Opinion.id.notin_(reviewed), Case.id.notin_(on_case))
        .order_by(Opinion.signed_at.desc(), Opinion.id.desc()).limit(1))
    if opinion is None:
        return None
    case = db.session.get(Case, opinion.case_id)
    content = {k: v for k, v in opinion.content.items() if k in ("diagnosis", "differential", "recommendations",
                                                                 "follow_up")}
    return {"case_id": case.id, "opinion_id": opinion.id, "clinical_question": case.clinical_question,
            "summary": case.summary, "specialty": case.specialty, "opinion": content}


def review(*, case_id: int, reviewer: User, score: str, teaching_note: str) -> PeerReview:
    """Record a blinded review of the case's latest signed opinion; one per reviewer and opinion."""
    case = db.session.get(Case, case_id) if case_id <= MAX_ID else None
    opinion = _eligible_opinion(reviewer, case)
    if opinion is None:
        raise NotFound("case not found")  # not reviewable by this user: do not reveal that it exists
    if score != "agree" and not teaching_note:
        raise BadRequest("a disagreement needs a teaching note", {"field": "teaching_note"})
    if db.session.scalar(sa.select(PeerReview.id).where(PeerReview.opinion_id == opinion.id,
                                                        PeerReview.reviewer_id == reviewer.id)) is not None:
        raise Conflict("you already reviewed this opinion")
    entry = PeerReview(case_id=case.id, opinion_id=opinion.id, reviewer_id=reviewer.id, reviewee_id=opinion.author_id,
                       score=score, teaching_note=teaching_note or None)
    try:
        # A double tap: both requests passed the look-up above; uq_peer_reviews_opinion_reviewer
        # lets one in, and the other is the same 409, not a 500.
        with db.session.begin_nested():
            db.session.add(entry)
    except sa.exc.IntegrityError:
        raise Conflict("you already reviewed this opinion") from None
    return entry
