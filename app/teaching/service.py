"""The teaching collection: propose a closed case, the referring doctor's consent, browse, unpublish.

A peer review's disagreement becomes a proposal through the same :func:`propose` (then the same
consent and unpublishing): :func:`propose_from_review` only decides who may and what it carries.

Like the cases service these functions flush and never commit; the route commits.
"""

import sqlalchemy as sa

from app.accounts.models import User
from app.cases import service as cases
from app.cases.models import Case
from app.cases.permissions import Action
from app.cases.search import opinion_text
from app.cases.workflow import require_status
from app.core import fulltext
from app.core.errors import BadRequest, Conflict, Forbidden, NotFound
from app.core.time import utcnow
from app.extensions import db
from app.imaging import service as imaging
from app.metrics.models import PeerReview
from app.notifications.service import notify
from app.orgs.models import Org
from app.orgs.permissions import MAX_ID, is_admin
from app.teaching.models import TeachingCase, TeachingSearch
from app.teaching.permissions import acting_orgs, published_for, reader_orgs, review_capacity, reviews_for
from app.teaching.schemas import Tags, TeachingQuery

INDEX = fulltext.Index(table="teaching_search", key="teaching_id", title="title", body="body", tsv="tsv",
                       fts="teaching_search_fts")
OPINION_FIELDS = ("diagnosis", "differential", "recommendations", "follow_up")
DISAGREEMENT_TAG = "同行评议分歧"  # the keyword a teaching case from a peer review carries (searchable)


def _copy(case: Case) -> dict:
    """The read-only copy of a case: its question, the reports and the signed opinion, without names."""
    signed = cases.signed_versions(case)
    opinion = {k: signed[-1].content.get(k) for k in OPINION_FIELDS} if signed else None
    return {
        "title": case.title, "question": case.clinical_question, "summary": case.summary,
        "patient": {"age": case.patient_age, "sex": case.patient_sex},
        "studies": imaging.case_studies(case),
        "reports": [{"discipline": r.discipline, "body": r.body} for r in cases.reports(case)],
        "opinion": opinion,
    }


def _index(t: TeachingCase) -> None:
    c = t.content
    title = fulltext.document(c["title"], " ".join(t.keywords or []))
    body = fulltext.document(c["question"], c["summary"], t.note, *[r["body"] for r in c["reports"]],
                             opinion_text(c["opinion"]))
    row = db.session.get(TeachingSearch, t.id) or TeachingSearch(teaching_id=t.id)
    row.title, row.body = title, body
    row.tsv = fulltext.tsvector(sa.literal(title), sa.literal(body)) \
        if db.session.get_bind().dialect.name == "postgresql" else None
    db.session.add(row)
    db.session.flush()


def _already_proposed(case: Case, org: Org, review: PeerReview | None) -> None:
    """Raise the 409 if the case is already proposed to (or published in, or refused for) the org."""
    existing = db.session.scalar(sa.select(TeachingCase).where(TeachingCase.case_id == case.id,
                                                               TeachingCase.org_id == org.id))
    if existing is None:
        return
    if review is not None and existing.peer_review_id == review.id:
        raise Conflict("this peer review was already proposed to this collection",
                       {"org_id": org.id, "teaching_id": existing.id, "state": existing.state})
    raise Conflict("already proposed to this collection", {"org_id": org.id})


def propose(*, case: Case, actor: User, org_id: int, note: str, tags, review: PeerReview | None = None
            ) -> TeachingCase:
    """Propose the closed case for the teaching collection of an org the proposer belongs to.

    With ``review`` (a minor or major disagreement) the proposal records it, and the referring
    doctor's notification does not name the proposer, who may be the blinded reviewer.
    """
    require_status(case, Action.PROPOSE_TEACHING)
    org = db.session.get(Org, org_id)
    if org is None or org.id not in set(db.session.scalars(reader_orgs(actor))):
        raise BadRequest("you can propose only to a consortium or pool you belong to", {"org_id": org_id})
    _already_proposed(case, org, review)
    t = TeachingCase(case_id=case.id, org_id=org.id, proposed_by_id=actor.id, note=note,
                     specialty=tags.specialty or case.specialty, keywords=tags.keywords,
                     difficulty=tags.difficulty, content=_copy(case),
                     peer_review_id=review.id if review else None, disagreement=review.score if review else None)
    db.session.add(t)
    try:
        db.session.flush()
    except sa.exc.IntegrityError:
        # The same proposal raced itself (uq_teaching_cases_case_org): the first one stands.
        db.session.rollback()
        _already_proposed(case, org, review)
        raise
    _index(t)
    notify(users=[case.owner], case_id=case.id, kind="teaching_proposed_review" if review else "teaching_proposed",
           actor=actor)
    return t


def _review(user: User, review_id: int) -> tuple[PeerReview, Case, str]:
    review = db.session.get(PeerReview, review_id) if review_id <= MAX_ID else None
    case = db.session.get(Case, review.case_id) if review is not None else None
    capacity = review_capacity(user, review, case) if case is not None else None
    if capacity is None:
        raise NotFound("peer review not found")  # do not reveal that it exists
    return review, case, capacity


def propose_from_review(*, review_id: int, actor: User, org_id: int, tags: Tags) -> TeachingCase:
    """Propose the case of a peer review's disagreement for an org's teaching collection, with the
    review's teaching note and score (its author, its reviewer, or the case's pool coordinator/admin)."""
    review, case, _capacity = _review(actor, review_id)
    if review.score not in ("minor", "major"):
        raise Conflict("only a minor or major disagreement can become a teaching case; this review agreed",
                       {"score": review.score})
    keywords = [*tags.keywords, *([] if DISAGREEMENT_TAG in tags.keywords else [DISAGREEMENT_TAG])]
    return propose(case=case, actor=actor, org_id=org_id, note=review.teaching_note or "",
                   tags=tags.model_copy(update={"keywords": keywords}), review=review)


def teachable_reviews(*, user: User) -> list[tuple[PeerReview, Case, str, list[TeachingCase]]]:
    """Return the minor/major reviews the user may turn into teaching cases, newest first, each with
    the user's capacity and the teaching cases already proposed from it."""
    acting = acting_orgs(user)
    rows = db.session.execute(sa.select(PeerReview, Case).join(Case, Case.id == PeerReview.case_id).where(
        PeerReview.score != "agree", reviews_for(user, acting)).order_by(PeerReview.id.desc()).limit(200)).all()
    made: dict[int, list[TeachingCase]] = {}
    if rows:
        for t in db.session.scalars(sa.select(TeachingCase).where(
                TeachingCase.peer_review_id.in_([r.id for r, _c in rows])).order_by(TeachingCase.id)):
            made.setdefault(t.peer_review_id, []).append(t)
    return [(r, c, review_capacity(user, r, c, acting=acting), made.get(r.id, [])) for r, c in rows]


def proposable_orgs(*, user: User) -> list[Org]:
    """Return the orgs the user may propose teaching cases to (those whose collection they read)."""
    return list(db.session.scalars(sa.select(Org).where(Org.id.in_(reader_orgs(user))).order_by(Org.name, Org.id)))


def _role(user: User, t: TeachingCase, case: Case) -> str | None:
    if user.id == case.owner_id:
        return "owner"
    if user.id in (t.proposed_by_id, case.consultant_id):
        return "proposer"  # the consultant, or whoever proposed it from a peer review
    if db.session.scalar(sa.select(TeachingCase.id).where(TeachingCase.id == t.id, published_for(user))):
        return "reader"
    return None


def get(*, user: User, teaching_id: int) -> tuple[TeachingCase, str]:
    """Return the teaching case and the user's part in it; NotFound if they may not see it."""
    t = db.session.get(TeachingCase, teaching_id) if teaching_id <= MAX_ID else None
    role = _role(user, t, db.session.get(Case, t.case_id)) if t is not None else None
    if role is None:
        raise NotFound("teaching case not found")
    return t, role


def consent(*, user: User, teaching_id: int, agree: bool, show_hospital: bool) -> TeachingCase:
    """The referring doctor agrees (published at once) or refuses; whether their hospital is named."""
    t, role = get(user=user, teaching_id=teaching_id)
    if role != "owner":
        raise Forbidden("only the referring doctor consents")
    if t.state != "proposed":
        raise Conflict("already decided", {"state": t.state})
    # Decided only if still undecided and still there: of two answers at once (agree in one tab,
    # refuse in another) one stands and the other is told, and a removal meanwhile is a 404.
    decided = db.session.execute(sa.update(TeachingCase).where(
        TeachingCase.id == t.id, TeachingCase.state == "proposed").values(
        state="published" if agree else "refused", decided_at=utcnow(),
        hospital_name=user.institution.name if agree and show_hospital else None))
    if decided.rowcount != 1:
        state = db.session.scalar(sa.select(TeachingCase.state).where(TeachingCase.id == t.id))
        if state is None:
            raise NotFound("teaching case not found")
        raise Conflict("already decided", {"state": state})
    db.session.refresh(t)
    return t


def unpublish(*, user: User, teaching_id: int) -> None:
    """Remove the teaching case from the collection at once (its proposer or consultant, the owner, an org admin)."""
    t, role = get(user=user, teaching_id=teaching_id)
    if role not in ("owner", "proposer") and not is_admin(user, db.session.get(Org, t.org_id)):
        raise Forbidden("only its consultant or proposer, the referring doctor or an org admin can remove it")
    db.session.delete(t)
    db.session.flush()


def collection(*, user: User, query: TeachingQuery) -> list[TeachingCase]:
    """Return the published teaching cases the user may read, best match first with q, else newest."""
    stmt = sa.select(TeachingCase).where(published_for(user))
    if query.specialty:
        stmt = stmt.where(TeachingCase.specialty == query.specialty)
    if query.org_id:
        stmt = stmt.where(TeachingCase.org_id == query.org_id)
    if query.difficulty:
        stmt = stmt.where(TeachingCase.difficulty == query.difficulty)
    order = [TeachingCase.decided_at.desc(), TeachingCase.id.desc()]
    hits = fulltext.ranked(INDEX, query.q, db.session.get_bind().dialect.name) if query.q else None
    if hits is not None:
        stmt = stmt.join(hits, hits.c.id == TeachingCase.id)
        order.insert(0, hits.c.score.desc())
    return list(db.session.scalars(stmt.order_by(*order).limit(200)))


def awaiting_consent(*, user: User) -> list[TeachingCase]:
    """Return the proposals waiting for this referring doctor's answer, and those they proposed."""
    mine = sa.select(Case.id).where(Case.owner_id == user.id)
    return list(db.session.scalars(sa.select(TeachingCase).where(
        TeachingCase.state != "published",
        sa.or_(TeachingCase.case_id.in_(mine), TeachingCase.proposed_by_id == user.id)).order_by(
        TeachingCase.id.desc())))
