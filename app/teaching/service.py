"""The teaching collection: propose a closed case, the referring doctor's consent, browse, unpublish.

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
from app.notifications.service import notify
from app.orgs.models import Org
from app.orgs.permissions import MAX_ID, is_admin
from app.teaching.models import TeachingCase, TeachingSearch
from app.teaching.permissions import published_for, reader_orgs
from app.teaching.schemas import TeachingQuery

INDEX = fulltext.Index(table="teaching_search", key="teaching_id", title="title", body="body", tsv="tsv",
                       fts="teaching_search_fts")
OPINION_FIELDS = ("diagnosis", "differential", "recommendations", "follow_up")


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


def propose(*, case: Case, actor: User, org_id: int, note: str, tags) -> TeachingCase:
    """Propose the closed case for the teaching collection of an org the consultant belongs to."""
    require_status(case, Action.PROPOSE_TEACHING)
    org = db.session.get(Org, org_id)
    if org is None or org.id not in set(db.session.scalars(reader_orgs(actor))):
        raise BadRequest("you can propose only to a consortium or pool you belong to", {"org_id": org_id})
    if db.session.scalar(sa.select(TeachingCase.id).where(TeachingCase.case_id == case.id,
                                                          TeachingCase.org_id == org.id)) is not None:
        raise Conflict("already proposed to this collection", {"org_id": org.id})
    t = TeachingCase(case_id=case.id, org_id=org.id, proposed_by_id=actor.id, note=note,
                     specialty=tags.specialty or case.specialty, keywords=tags.keywords,
                     difficulty=tags.difficulty, content=_copy(case))
    db.session.add(t)
    db.session.flush()
    _index(t)
    notify(users=[case.owner], case_id=case.id, kind="teaching_proposed", actor=actor)
    return t


def _role(user: User, t: TeachingCase, case: Case) -> str | None:
    if user.id == case.owner_id:
        return "owner"
    if user.id == t.proposed_by_id:
        return "consultant"
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
    t.state, t.decided_at = ("published" if agree else "refused"), utcnow()
    t.hospital_name = user.institution.name if agree and show_hospital else None
    db.session.flush()
    return t


def unpublish(*, user: User, teaching_id: int) -> None:
    """Remove the teaching case from the collection at once (its consultant, the owner, an org admin)."""
    t, role = get(user=user, teaching_id=teaching_id)
    if role not in ("owner", "consultant") and not is_admin(user, db.session.get(Org, t.org_id)):
        raise Forbidden("only its consultant, the referring doctor or an org admin can remove it")
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
