"""Searching cases: each case's search document, kept in step in one place, and the ranked match.

The document is the case's title (weighted higher), clinical question, summary, discipline
reports and the latest signed opinion. It is refreshed by a session hook rather than by each
service that changes those texts: after every flush the cases whose texts changed are noted,
and just before the commit their documents are rebuilt, so a new edit path cannot forget it.
"""

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event, orm

from app.cases.models import Case, CaseSearch, DisciplineReport, Opinion
from app.core import fulltext
from app.extensions import db

INDEX = fulltext.Index(table="case_search", key="case_id", title="title", body="body", tsv="tsv",
                       fts="case_search_fts")
CASE_TEXTS = ("title", "clinical_question", "summary")
_PENDING = "case_search_pending"


def opinion_text(content: dict | None) -> str:
    """Return the searchable text of an opinion's content: diagnosis, differential, advice, contributions."""
    content = content or {}
    parts = [content.get(k) or "" for k in ("diagnosis", "recommendations", "follow_up")]
    parts += [d for d in content.get("differential") or [] if isinstance(d, str)]
    parts += [(c or {}).get("summary") or "" for c in content.get("contributions") or []]
    return "\n".join(parts)


def _row_values(title: str, body: str, dialect: str) -> dict:
    tsv = fulltext.tsvector(sa.literal(title), sa.literal(body)) if dialect == "postgresql" else None
    return {"title": title, "body": body, "tsv": tsv}


def refresh(session: orm.Session, case_ids: set[int]) -> None:
    """Rebuild the search documents of these cases (from their current texts) in the session."""
    dialect = session.get_bind().dialect.name
    for case in session.scalars(sa.select(Case).where(Case.id.in_(case_ids))):
        reports = session.scalars(sa.select(DisciplineReport.body).where(DisciplineReport.case_id == case.id))
        signed = session.scalar(sa.select(Opinion.content).where(
            Opinion.case_id == case.id, Opinion.state == "signed").order_by(Opinion.version.desc()).limit(1))
        title = fulltext.document(case.title)
        body = fulltext.document(case.clinical_question, case.summary, *reports, opinion_text(signed))
        row = session.get(CaseSearch, case.id) or CaseSearch(case_id=case.id)
        for name, value in _row_values(title, body, dialect).items():
            setattr(row, name, value)
        session.add(row)
    session.flush()
    if dialect == "postgresql":
        # The copy on the case row that searches use (Case.search_tsv); updated_at is kept as it
        # was, since a report or an opinion is not an edit of the case itself.
        cases = Case.__table__
        session.execute(sa.update(cases).where(cases.c.id.in_(case_ids)).values(
            search_tsv=sa.select(CaseSearch.tsv).where(CaseSearch.case_id == cases.c.id).scalar_subquery(),
            updated_at=cases.c.updated_at))


def _changed_case_id(obj, *, new: bool) -> int | None:
    if isinstance(obj, Case):
        texts_changed = any(sa.inspect(obj).attrs[name].history.has_changes() for name in CASE_TEXTS)
        return obj.id if new or texts_changed else None
    if isinstance(obj, DisciplineReport):
        return obj.case_id
    if isinstance(obj, Opinion) and obj.state == "signed":
        return obj.case_id
    return None


def _after_flush(session, _context) -> None:
    # Still the pre-flush view here: new/dirty and the attributes' history tell what this flush wrote.
    for objs, new in ((session.new, True), (session.dirty, False)):
        for obj in objs:
            case_id = _changed_case_id(obj, new=new)
            if case_id is not None:
                session.info.setdefault(_PENDING, set()).add(case_id)


def _before_commit(session) -> None:
    session.flush()  # commit flushes only after this hook: flush first so the last changes are noted
    pending = session.info.pop(_PENDING, None)
    if pending:
        refresh(session, pending)


def _forget(session, *_args) -> None:
    session.info.pop(_PENDING, None)


def init_app(app: Flask) -> None:
    """Keep every case's search document in step with its texts, whichever code changed them."""
    for name, listener in (("after_flush", _after_flush), ("before_commit", _before_commit),
                           ("after_rollback", _forget)):
        if not event.contains(orm.Session, name, listener):
            event.listen(orm.Session, name, listener)


def in_case_texts(q: str):
    """Return a SQL condition on Case: every term of q occurs in the case's own texts (title, clinical
    question, summary), case-insensitively; None if q has no terms.

    The search document also holds the reports and the signed opinion, which some who see a case
    (a triage coordinator) may not read: for them a match must come from these texts, or a search
    would tell whether an opinion says a word. A term is looked for as a substring, so it may match
    a little more than the index (a word's middle), never less: found only in a report, it is not."""
    terms = fulltext.query_terms(q)
    if not terms:
        return None
    texts = sa.func.lower(sa.func.coalesce(Case.title, "") + "\n" + sa.func.coalesce(Case.clinical_question, "")
                          + "\n" + sa.func.coalesce(Case.summary, ""))
    return sa.and_(*(texts.contains(term, autoescape=True) for term, _prefix in terms))


def matching(q: str, *, indexed: bool = True):
    """Return (condition, score, join) selecting the cases whose documents match q, higher score
    better, or None if q has no terms. ``join`` is a subquery (id, score) to join cases with
    (SQLite's FTS5 table), or None when the condition and score are on the case row itself
    (PostgreSQL's Case.search_tsv, so the planner ANDs it with visibility and filters in one scan;
    not ``indexed``, the condition cannot use the GIN index and is checked on the rows the other
    conditions select, for callers who see few cases)."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        tsv = Case.search_tsv if indexed else sa.func.coalesce(Case.search_tsv, sa.literal_column("''::tsvector"))
        match = fulltext.tsv_match(tsv, q)
        return None if match is None else (*match, None)
    hits = fulltext.ranked(INDEX, q, dialect)
    return None if hits is None else (hits.c.id == Case.id, hits.c.score, hits)
