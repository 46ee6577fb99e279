"""The journal reads a timeline entry committed after one with a larger id (ids are handed out
before commit), and ``flask --app run metrics-rebuild`` heals changes made without any entry."""

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.cases.models import Case, CaseEvent
from app.core.time import utcnow
from app.extensions import db
from app.metrics.models import MetricCell, MetricJournal
from app.metrics.rollup import JOURNAL_LAG, _encode, _journal, live_cells, month_bounds, refresh

MONTH = "2025-01"


def _stored() -> dict:
    return {(c.unit_id, c.code): (c.n, c.k, c.s, c.ss, c.hist) for c in db.session.scalars(
        sa.select(MetricCell).where(MetricCell.kind == "doctor", MetricCell.month == MONTH))}


def _full() -> dict:
    start, end = month_bounds(MONTH)
    return {(unit, code): (c.n, c.k, c.s, c.ss, None if c.hist is None else _encode(c.hist))
            for (unit, _), by_code in live_cells(level="doctor", start=start, end=end).items()
            for code, c in by_code.items()}


def _close(session, case_id: int, actor: int, **event) -> int:
    """Close and rate the case with its timeline entry, in ``session``; return the entry's id."""
    session.execute(sa.update(Case).where(Case.id == case_id).values(status="closed", rating=1,
                                                                      outcome="referral_needed"))
    entry = CaseEvent(case_id=case_id, actor_id=actor, action="close", at=utcnow(), **event)
    session.add(entry)
    session.flush()
    return entry.id


def _note(session, case_id: int, actor: int, **event) -> int:
    entry = CaseEvent(case_id=case_id, actor_id=actor, action="note", at=utcnow(), **event)
    session.add(entry)
    session.flush()
    return entry.id


def test_an_entry_committed_after_a_larger_one_is_read(app, mworld):
    with app.app_context():
        refresh(level="doctor", months=[MONTH])
        assert _stored() == _full()
        declined = mworld["declined"]  # dB's answered case, not rated yet
        other = db.session.scalar(sa.select(Case.id).where(Case.consultant_id == mworld["dA2"]))
        db.session.commit()
        postgres = db.engine.dialect.name == "postgresql"
        first, second = so.Session(db.engine), so.Session(db.engine)
        try:
            if postgres:
                # Two real transactions: the first takes its id, the second a larger one and commits first.
                small = _close(first, declined, mworld["gp"])
                large = _note(second, other, mworld["gp"])
                second.commit()
            else:
                # SQLite serialises writers (ids are committed in order), so the ids are handed out by hand.
                top = db.session.scalar(sa.select(sa.func.max(CaseEvent.id)))
                large = _note(second, other, mworld["gp"], id=top + 5)
                second.commit()
            assert refresh(level="doctor", months=[MONTH])  # wrote: the larger entry read
            journal = db.session.get(MetricJournal, 1, populate_existing=True)
            assert journal.read_upto == large
            assert journal.upto < large  # the watermark stays behind the entries younger than the lag
            if not postgres:
                small = _close(first, declined, mworld["gp"], id=top + 2)
            first.commit()
            assert small < large
        finally:
            first.close()
            second.close()

        before = _stored()[(mworld["dB"], "mean_rating")]
        refresh(level="doctor", months=[MONTH])
        after = _stored()
        assert after == _full()  # the late entry's case was read: dB's month rebuilt with the rating
        assert after[(mworld["dB"], "mean_rating")][0] == before[0] + 1

        # Once the entries are older than the lag the watermark moves past them, up to the young one.
        db.session.execute(sa.update(CaseEvent).values(at=utcnow() - JOURNAL_LAG - timedelta(seconds=5)))
        young = _note(db.session, other, mworld["gp"])
        assert _journal() == young
        db.session.commit()
        journal = db.session.get(MetricJournal, 1, populate_existing=True)
        assert (journal.upto, journal.read_upto, journal.read_count, journal.read_sum) == (large, young, 1, young)


def test_metrics_rebuild_heals_a_change_without_an_entry(app, mworld, runner):
    with app.app_context():
        refresh(level="doctor", months=[MONTH])
        db.session.execute(sa.update(Case).where(Case.id == mworld["declined"]).values(rating=1, status="closed"))
        db.session.commit()  # no timeline entry: the journal cannot see it
        refresh(level="doctor", months=[MONTH])
        assert _stored() != _full()
    result = runner.invoke(args=["metrics-rebuild"])
    assert result.exit_code == 0, result.output
    assert "rebuilt 1 stored month" in result.output
    with app.app_context():
        assert _stored() == _full()
