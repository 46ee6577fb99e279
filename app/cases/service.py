"""Cases: creating, sharing, the consultation workflow, participants, reports and opinions.

Who commits: these functions change the session and flush, never commit; the route that called
them commits once it has the whole change (and rolls back on a domain error through
``case_route``), so one request is one transaction. Notifications queued here are sent after
that commit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import User
from app.cases import search, workflow
from app.cases.models import Case, CaseEvent, DisciplineReport, Opinion, Participant
from app.cases.permissions import (
    CONSULTANT,
    OWNER,
    PARTICIPANT,
    Action,
    Reach,
    lock_case,
    opinion_readers_filter,
    reach_of,
    reads_note,
    role_filter,
    role_of,
    visible_case_filter,
)
from app.cases.signals import participant_removed
from app.core.errors import BadRequest, Conflict, NotFound
from app.core.signals import send_after_commit
from app.core.time import utcnow
from app.extensions import db
from app.imaging import service as imaging
from app.imaging.models import Series
from app.notifications.service import notify
from app.orgs.models import Org
from app.orgs.permissions import coordinated_pools

if TYPE_CHECKING:  # the schemas serialise through this module, so only their types are needed here
    from app.cases.schemas import CaseCreate, CaseListQuery, OpinionIn

# How soon an opinion is expected after sharing, by urgency.
RESPONSE_TIME = {"emergency": timedelta(hours=6), "urgent": timedelta(hours=48), "routine": timedelta(days=7)}
OPINION_REQUIRED = ("diagnosis", "recommendations")
COUNT_CAP = 1000  # a search counts its matches up to this many, then answers "1000+"


def create_case(*, owner: User, data: CaseCreate) -> Case:
    """Create a draft case owned by the user."""
    case = Case(
        owner=owner, title=data.title, clinical_question=data.clinical_question, summary=data.summary,
        specialty=data.specialty, patient_age=data.patient.age, patient_sex=data.patient.sex or "unknown",
        urgency=data.urgency, status="draft",
    )
    db.session.add(case)
    db.session.flush()
    workflow.record(case, "created", actor=owner)
    return case


def waiting_for(user: User):
    """A SQL condition selecting the cases whose next step is the user's (待我处理)."""
    return sa.or_(
        sa.and_(Case.consultant_id == user.id, Case.status.in_(("submitted", "accepted"))),
        sa.and_(Case.owner_id == user.id, Case.status.in_(("info_requested", "answered"))),
        sa.and_(Case.pool_id.in_(coordinated_pools(user.id)), Case.consultant_id.is_(None),
                Case.status == "submitted"),
    )


def _filters(viewer: User, query: CaseListQuery, reach: Reach) -> list:
    # First and always, so a search never reaches past it.
    conditions = [visible_case_filter(viewer, reach)]
    for column, value in ((Case.status, query.status), (Case.specialty, query.specialty),
                          (Case.urgency, query.urgency)):
        if value:
            conditions.append(column == value)
    if query.modality:
        conditions.append(Case.id.in_(sa.select(Series.case_id).where(Series.modality == query.modality)))
    if query.from_:
        conditions.append(Case.created_at >= datetime.combine(query.from_, time.min))
    if query.to:
        conditions.append(Case.created_at < datetime.combine(query.to + timedelta(days=1), time.min))
    if query.waiting_for_me:
        conditions.append(waiting_for(viewer))
    return conditions


def search_cases(*, viewer: User, query: CaseListQuery, reach: Reach | None = None,
                 within: list | None = None) -> tuple[list[Case], int]:
    """Return the cases the user may see that match the words and filters, and how many match,
    counted no further than COUNT_CAP + 1 (more than COUNT_CAP means "at least that many").

    With words (``q``) the best match comes first; without, the newest. ``reach`` (the viewer's
    participations and pools, looked up if not given) can be shared with the listing's roles;
    ``within`` adds SQL conditions of the caller's own (an inbox section).
    """
    reach = reach or reach_of(viewer)
    conditions = [*_filters(viewer, query, reach), *(within or [])]
    # Only a pool's coordinator sees tens of thousands of cases; anyone else sees hundreds, whose rows
    # are read faster than a common word's index entries (which the planner underestimates).
    match = search.matching(query.q, indexed=bool(reach.pools)) if query.q else None
    ids = sa.select(Case.id)
    ranked = []
    if match is not None:
        if reach.pools:
            # Reports and the signed opinion are searched only where the viewer may read them: a pool's
            # coordinator sees cases whose opinion they may not read. (Anyone else sees only their own
            # roles' cases, on which they read it: no condition to add.)
            conditions.append(sa.or_(opinion_readers_filter(viewer, reach), search.in_case_texts(query.q)))
        condition, score, hits = match
        if hits is None:
            conditions.append(condition)
        else:
            ids = ids.join(hits, condition)
        ranked = [score.label("score"), sa.func.count().over().label("n")]  # every match is scored: count them too
    ids = ids.where(*conditions)
    # The page is chosen by id (and score) alone, and its rows are read with their people and pool in
    # the same statement: one round trip for the page however long it is.
    order = [Case.created_at.desc(), Case.id.desc()]
    page = ids.add_columns(*ranked).order_by(*([ranked[0].element.desc()] if ranked else []), *order)
    page = page.offset(query.offset).limit(query.limit).subquery()
    rows = db.session.execute(
        sa.select(Case, page.c.n if ranked else sa.null()).join(page, page.c.id == Case.id)
        .options(so.joinedload(Case.pool).load_only(Org.id, Org.name).lazyload(Org.institution))
        .order_by(*([page.c.score.desc()] if ranked else []), *order)).all()
    total = None
    if ranked and (rows or not query.offset):
        total = min(rows[0][1] if rows else 0, COUNT_CAP + 1)
    elif (rows or not query.offset) and (query.limit is None or len(rows) < query.limit):
        total = min(query.offset + len(rows), COUNT_CAP + 1)  # a short page (or the whole list) ends the list
    if total is None:  # counting every case of a broad list costs more than the page; nobody reads past "1000+"
        total = db.session.scalar(sa.select(sa.func.count()).select_from(ids.limit(COUNT_CAP + 1).subquery()))
    return [case for case, _n in rows], total


@dataclass(frozen=True)
class InboxSection:
    """One page of an inbox section: its cases, how many it holds (counted no further than
    COUNT_CAP + 1), and which page of ``per_page`` cases this is."""

    cases: list
    total: int
    page: int
    per_page: int

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        return (self.page - 1) * self.per_page + len(self.cases)

    @property
    def has_more(self) -> bool:
        # Past the count's cap the total is only "more than COUNT_CAP": a full page may have a next.
        return len(self.cases) == self.per_page and (self.capped or self.last < self.total)

    @property
    def capped(self) -> bool:
        return self.total > COUNT_CAP


INBOX_PAGE = 20  # cases a section shows at a time: a phone screen or two, light over a slow link
# What awaits the user and what they follow, in the page's order: the role the case gives them
# (permissions.role_filter) and which of its statuses belong to the section.
INBOX_SECTIONS = {
    "awaiting_decision": (CONSULTANT, Case.status == "submitted"),
    "questions": (OWNER, Case.status == "info_requested"),
    "invited": (PARTICIPANT, None),
    "consulting": (CONSULTANT, Case.status != "submitted"),
    "my_cases": (OWNER, Case.status != "info_requested"),
}


def dashboard(*, viewer: User, status: str | None = None, reach: Reach | None = None,
              pages: dict[str, int] | None = None, per_page: int = INBOX_PAGE) -> dict[str, InboxSection]:
    """Sort the cases the user may see into what awaits them and what they follow: a page of each
    section, newest first (``pages`` names a section's page; the others show their first).

    Each section is its own limited query, so a coordinator of a big pool (whose pool cases are
    in none of them) or a doctor with thousands of cases never loads more than a page of each.
    """
    from app.cases.schemas import CaseListQuery

    reach = reach or reach_of(viewer)
    pages = pages or {}
    sections = {}
    for name, (role, condition) in INBOX_SECTIONS.items():
        page = pages.get(name, 1)
        query = CaseListQuery(status=status, limit=per_page, offset=(page - 1) * per_page)
        within = [role_filter(viewer, role, reach), *([condition] if condition is not None else [])]
        found, total = search_cases(viewer=viewer, query=query, reach=reach, within=within)
        sections[name] = InboxSection(cases=found, total=total, page=page, per_page=per_page)
    return sections


def is_overdue(case: Case) -> bool:
    """Tell whether the case is still open past the time its urgency allows."""
    now = case.paused_at or utcnow()  # the clock stands still while information is requested
    return case.status in workflow.OPEN_STATUSES and case.due_at is not None and now > case.due_at


def resumed_clock(case: Case) -> dict:
    """Column values that restart a paused due clock, moving the due time by the pause."""
    if case.paused_at is None:
        return {}
    paused = utcnow() - case.paused_at
    return {"paused_at": None, "paused_seconds": (case.paused_seconds or 0) + int(paused.total_seconds()),
            "due_at": case.due_at + paused if case.due_at else None}


def overdue_cases(*, viewer: User) -> list[Case]:
    """Return the cases the user may see that are still open past their due time, most overdue first."""
    stmt = sa.select(Case).where(visible_case_filter(viewer), Case.status.in_(workflow.OPEN_STATUSES),
                                 Case.due_at.is_not(None), Case.due_at < utcnow())
    return list(db.session.scalars(stmt.order_by(Case.due_at, Case.id)))


def open_case_counts(user_ids: list[int]) -> dict[int, int]:
    """Return how many open cases (shared with them, not yet answered) each consultant has."""
    if not user_ids:
        return {}
    stmt = (sa.select(Case.consultant_id, sa.func.count())
            .where(Case.consultant_id.in_(user_ids), Case.status.in_(workflow.OPEN_STATUSES))
            .group_by(Case.consultant_id))
    return dict(db.session.execute(stmt).all())


# ---- the workflow ---------------------------------------------------------------------------

def share(*, case: Case, actor: User, specialist_id: int, message: str = "") -> Case:
    """Share a draft (or a declined case) with a specialist: status submitted."""
    specialist = db.session.get(User, specialist_id)
    if specialist is None or not specialist.active or specialist.is_admin:
        raise BadRequest("unknown specialist", {"specialist_id": specialist_id})
    if specialist.id == case.owner_id:
        raise BadRequest("you cannot share a case with yourself")
    now = utcnow()
    workflow.apply(case, Action.SHARE, actor=actor, note=message or None,
                   data={"specialist_id": specialist.id, "specialist_name": specialist.name},
                   values={"consultant_id": specialist.id, "submitted_at": now,
                           "due_at": now + RESPONSE_TIME[case.urgency],
                           "specialty": case.specialty or specialist.specialty})
    notify(users=[specialist], case_id=case.id, kind="shared", actor=actor)
    return case


def accept(*, case: Case, actor: User) -> Case:
    """The specialist takes the case: status accepted."""
    # Still theirs when the UPDATE lands: a coordinator may have rerouted the pooled case since the
    # access check, and an accepted case nobody holds would be stuck.
    workflow.apply(case, Action.ACCEPT, actor=actor, values={"accepted_at": utcnow()},
                   where=(Case.consultant_id == actor.id,))
    notify(users=[case.owner], case_id=case.id, kind="accepted", actor=actor)
    return case


def decline(*, case: Case, actor: User, reason: str = "") -> Case:
    """The specialist declines: status declined, and the case leaves their hands."""
    if case.pool_id is not None:
        from app.orgs.service import return_to_pool  # the pool path; imported here: orgs builds on cases

        return return_to_pool(case=case, actor=actor, reason=reason)
    # Still theirs when the UPDATE lands: a decline sent twice could otherwise land on the case the
    # owner has meanwhile shared with someone else, and decline it on that colleague's behalf.
    workflow.apply(case, Action.DECLINE, actor=actor, note=reason or None, values={"consultant_id": None},
                   where=(Case.consultant_id == actor.id,))
    notify(users=[case.owner], case_id=case.id, kind="declined", actor=actor)
    return case


def ask(*, case: Case, actor: User, question: str) -> Case:
    """The specialist asks the referring doctor for more information: status info_requested."""
    workflow.apply(case, Action.ASK, actor=actor, note=question, values={"paused_at": utcnow()})
    notify(users=[case.owner], case_id=case.id, kind="question", actor=actor)
    return case


def answer(*, case: Case, actor: User, text: str) -> Case:
    """The referring doctor answers the question (and may upload files): back to accepted."""
    workflow.apply(case, Action.ANSWER, actor=actor, note=text, values=resumed_clock(case))
    notify(users=[case.consultant], case_id=case.id, kind="answered_question", actor=actor)
    return case


def withdraw(*, case: Case, actor: User, reason: str = "") -> Case:
    """The owner withdraws a draft or a case not yet accepted; the specialist it was shared with,
    who never took it, loses access to it (as one who declines does)."""
    consultant = case.consultant
    # The specialist told is the one the UPDATE takes it from: a share from another tab landing
    # first makes this a 409, not a withdrawal that the newly asked specialist never hears of.
    workflow.apply(case, Action.WITHDRAW, actor=actor, note=reason or None, values={"consultant_id": None},
                   where=(Case.consultant_id.is_not_distinct_from(case.consultant_id),))
    notify(users=[consultant], case_id=case.id, kind="withdrawn", actor=actor)
    return case


def close(*, case: Case, actor: User, rating: int, comment: str = "", outcome: str | None = None,
          advice: str | None = None) -> Case:
    """The owner acknowledges the opinion, rates it and answers the close-out survey: status closed."""
    workflow.apply(case, Action.CLOSE, actor=actor, note=comment or None,
                   data={"rating": rating, "outcome": outcome, "advice": advice},
                   values={"rating": rating, "rating_comment": comment or None, "closed_at": utcnow(),
                           "outcome": outcome, "advice": advice})
    notify(users=[case.consultant], case_id=case.id, kind="closed", actor=actor)
    return case


def timeline(case: Case, *, viewer: User) -> list[CaseEvent]:
    """Return the case's timeline as the viewer may read it, oldest first: a step whose note they may
    not read (an amendment's reason, to a triage coordinator) comes without it."""
    events = list(db.session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id == case.id)
                                     .order_by(CaseEvent.id)))
    for event in events:
        if event.note is not None and not reads_note(viewer, case, event.action):
            db.session.expunge(event)  # a copy for this viewer: the stored note is never touched
            event.note = None
    return events


# ---- participants and reports ---------------------------------------------------------------

def participants(case: Case) -> list[Participant]:
    """Return the case's current participants."""
    return list(db.session.scalars(sa.select(Participant).where(
        Participant.case_id == case.id, Participant.removed_at.is_(None)).order_by(Participant.id)))


def invite(*, case: Case, actor: User, user_id: int, discipline: str) -> Participant:
    """Bring a colleague into the case for a discipline."""
    lock_case(case)
    workflow.require_status(case, Action.INVITE)
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.is_admin:
        raise BadRequest("unknown user", {"user_id": user_id})
    if role_of(user, case) in (OWNER, CONSULTANT):
        raise Conflict("already on the case", {"user_id": user_id, "role": role_of(user, case)})
    existing = db.session.scalar(sa.select(Participant).where(
        Participant.case_id == case.id, Participant.user_id == user_id))
    if existing is not None and existing.removed_at is None:
        raise Conflict("already a participant", {"user_id": user_id})
    if existing is None:
        existing = Participant(case_id=case.id, user_id=user_id, discipline=discipline, invited_by_id=actor.id)
        db.session.add(existing)
    else:  # invited again after being removed
        existing.removed_at, existing.discipline, existing.added_at = None, discipline, utcnow()
    workflow.record(case, "invited", actor=actor, data={"user_id": user_id, "discipline": discipline,
                                                          "name": user.name})
    notify(users=[user], case_id=case.id, kind="invited", actor=actor)
    db.session.flush()
    return existing


def remove_participant(*, case: Case, actor: User, user_id: int) -> None:
    """End a participant's access to the case at once; ``participant_removed`` is sent after commit."""
    # A second removal sent at the same moment finds them removed (404), not again; a message of
    # theirs being stored now is committed first, or checked again after this commit.
    lock_case(case)
    p = db.session.scalar(sa.select(Participant).where(
        Participant.case_id == case.id, Participant.user_id == user_id, Participant.removed_at.is_(None)))
    if p is None:
        raise NotFound("participant not found")
    p.removed_at = utcnow()
    workflow.record(case, "removed", actor=actor, data={"user_id": user_id, "name": p.user.name})
    notify(users=[p.user], case_id=case.id, kind="removed", actor=actor)
    send_after_commit(participant_removed, case_id=case.id, user_id=user_id)


def add_report(*, case: Case, actor: User, body: str, discipline: str | None) -> DisciplineReport:
    """Add a discipline report (one per author; a second call replaces the text)."""
    lock_case(case)
    workflow.require_status(case, Action.REPORT)
    if discipline is None:
        p = db.session.scalar(sa.select(Participant).where(
            Participant.case_id == case.id, Participant.user_id == actor.id))
        discipline = p.discipline if p else actor.specialty
    report = db.session.scalar(sa.select(DisciplineReport).where(
        DisciplineReport.case_id == case.id, DisciplineReport.author_id == actor.id))
    if report is None:
        report = DisciplineReport(case_id=case.id, author_id=actor.id, discipline=discipline, body=body)
        db.session.add(report)
    else:
        report.body, report.discipline = body, discipline
    workflow.record(case, "report", actor=actor, data={"discipline": discipline})
    db.session.flush()
    return report


def reports(case: Case) -> list[DisciplineReport]:
    """Return the case's discipline reports."""
    return list(db.session.scalars(sa.select(DisciplineReport).where(
        DisciplineReport.case_id == case.id).order_by(DisciplineReport.id)))


# ---- opinions -------------------------------------------------------------------------------

def canonical(content: dict) -> str:
    """The canonical JSON text of an opinion, the one its signature hash covers."""
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _versions(case: Case) -> list[Opinion]:
    return list(db.session.scalars(sa.select(Opinion).where(Opinion.case_id == case.id).order_by(Opinion.version)
                                   .execution_options(populate_existing=True)))


def _check_image_refs(case: Case, data: OpinionIn) -> None:
    """The opinion's key images must be images of the case (the PDF and the page link to them)."""
    if data.image_refs:
        imaging.check_image_refs(case, data.image_refs)


def draft_of(case: Case) -> Opinion | None:
    """Return the case's unsigned draft, if any."""
    return next((o for o in _versions(case) if o.state == "draft"), None)


def signed_versions(case: Case) -> list[Opinion]:
    """Return the signed versions, oldest first."""
    return [o for o in _versions(case) if o.state == "signed"]


def _merge(base: dict, update: OpinionIn) -> dict:
    merged = dict(base)
    merged.update(update.model_dump(exclude_none=True, mode="json"))
    return merged


def save_draft(*, case: Case, actor: User, data: OpinionIn) -> Opinion:
    """Create or update the consultant's draft opinion."""
    _check_image_refs(case, data)
    lock_case(case)
    # A draft also prepares an amendment once the opinion is signed.
    workflow.require_status(case, Action.WRITE_OPINION, Action.AMEND_OPINION)
    draft = draft_of(case)
    if draft is None:
        versions = _versions(case)
        base = versions[-1].content if versions else {}
        draft = Opinion(case_id=case.id, version=(versions[-1].version + 1) if versions else 1,
                        state="draft", content=_merge(base, data), author_id=actor.id)
        db.session.add(draft)
    else:
        draft.content = _merge(draft.content, data)
    db.session.flush()
    return draft


def _freeze(case: Case, actor: User, data: OpinionIn, reason: str | None) -> Opinion:
    draft = draft_of(case)
    versions = _versions(case)
    base = draft.content if draft else (versions[-1].content if versions else {})
    content = _merge(base, data)
    if not content.get("contributions"):
        content["contributions"] = [{"discipline": r.discipline, "user_id": r.author_id, "summary": r.body}
                                    for r in reports(case)]
    missing = [f for f in OPINION_REQUIRED if not (content.get(f) or "").strip()]
    if missing:
        raise BadRequest(f"the opinion needs: {', '.join(missing)}", {"missing": missing})
    opinion = draft or Opinion(case_id=case.id, version=(versions[-1].version + 1) if versions else 1,
                               author_id=actor.id)
    opinion.content = content
    opinion.state = "signed"
    opinion.author_id = actor.id
    opinion.signed_at = utcnow()
    opinion.content_sha256 = hashlib.sha256(canonical(content).encode()).hexdigest()
    opinion.amendment_reason = reason
    if draft is None:
        db.session.add(opinion)
    db.session.flush()
    return opinion


def sign_opinion(*, case: Case, actor: User, data: OpinionIn) -> Opinion:
    """Sign and send the opinion (the draft plus these fields): status answered, content frozen."""
    _check_image_refs(case, data)
    lock_case(case)
    workflow.require_status(case, Action.SIGN_OPINION)
    opinion = _freeze(case, actor, data, None)
    workflow.apply(case, Action.SIGN_OPINION, actor=actor,
                   data={"version": opinion.version, "sha256": opinion.content_sha256},
                   values={"answered_at": opinion.signed_at})
    notify(users=[case.owner, *[p.user for p in participants(case)]], case_id=case.id,
           kind="opinion_signed", actor=actor)
    return opinion


def amend_opinion(*, case: Case, actor: User, data: OpinionIn, reason: str) -> Opinion:
    """Sign a new version of an already signed opinion; the earlier versions are kept."""
    _check_image_refs(case, data)
    lock_case(case)
    workflow.require_status(case, Action.AMEND_OPINION)
    opinion = _freeze(case, actor, data, reason)
    workflow.record(case, "opinion_amended", actor=actor, note=reason,
                    data={"version": opinion.version, "sha256": opinion.content_sha256})
    notify(users=[case.owner], case_id=case.id, kind="opinion_amended", actor=actor)
    return opinion
