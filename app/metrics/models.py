"""The close-out follow-up, blinded peer reviews, and the indexes the metric aggregates need."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.cases.models import Case, CaseEvent
from app.core.db import in_list
from app.core.time import utcnow
from app.extensions import db

PEER_SCORES = ("agree", "minor", "major")

# The aggregates group cases by consultant or pool within a submission period, and look up a case's
# accept/decline/ask events by actor or by case; without these every dashboard scans the tables.
sa.Index("ix_cases_consultant_submitted", Case.__table__.c.consultant_id, Case.__table__.c.submitted_at)
sa.Index("ix_cases_pool_submitted", Case.__table__.c.pool_id, Case.__table__.c.submitted_at)
sa.Index("ix_cases_submitted_at", Case.__table__.c.submitted_at)
sa.Index("ix_case_events_actor_action_at", CaseEvent.__table__.c.actor_id, CaseEvent.__table__.c.action,
         CaseEvent.__table__.c.at)
sa.Index("ix_case_events_case_action", CaseEvent.__table__.c.case_id, CaseEvent.__table__.c.action)


class FollowUp(db.Model):
    """Thirty days after closing, the owner is asked once whether the advice was followed."""

    __tablename__ = "case_follow_ups"

    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    asked_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    answered_at: so.Mapped[datetime | None]
    followed: so.Mapped[bool | None]


class PeerReview(db.Model):
    """A blinded RADPEER-style review of a signed opinion by a colleague of the same specialty."""

    __tablename__ = "peer_reviews"
    __table_args__ = (
        sa.UniqueConstraint("opinion_id", "reviewer_id", name="uq_peer_reviews_opinion_reviewer"),
        sa.CheckConstraint(in_list("score", PEER_SCORES), name="score"),
        sa.CheckConstraint("reviewer_id != reviewee_id", name="not_self"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    opinion_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("opinions.id", ondelete="CASCADE"))
    reviewer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    reviewee_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    score: so.Mapped[str] = so.mapped_column(sa.String(10))
    # Written when there is disagreement: what the colleague would teach from this case.
    teaching_note: so.Mapped[str | None] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class MetricMonth(db.Model):
    """A stored month of the metric rollup at one level: up to which timeline entry it is built, and
    when it goes stale on its own (the next open case to pass its due time)."""

    __tablename__ = "metric_months"

    kind: so.Mapped[str] = so.mapped_column(sa.String(12), primary_key=True)  # doctor, institution, pool
    month: so.Mapped[str] = so.mapped_column(sa.String(7), primary_key=True)  # YYYY-MM
    built_upto: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    stale_after: so.Mapped[datetime | None]
    built_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class MetricCell(db.Model):
    """One metric for one unit in one stored month: its additive sums, and for a median the count of
    values per half-hour bucket (little-endian int32 (bucket, count) pairs)."""

    __tablename__ = "metric_cells"

    kind: so.Mapped[str] = so.mapped_column(sa.String(12), primary_key=True)
    month: so.Mapped[str] = so.mapped_column(sa.String(7), primary_key=True)
    unit_id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), primary_key=True)
    n: so.Mapped[int]
    k: so.Mapped[int]
    s: so.Mapped[float]
    ss: so.Mapped[float]
    hist: so.Mapped[bytes | None] = so.mapped_column(sa.LargeBinary)


class MetricJournal(db.Model):
    """The one row saying which timeline entries the changed cases have been turned into dirty
    units (:class:`MetricDirty`) and their marks (:class:`MetricMark`) brought up to date.

    Entry ids are handed out before their transaction commits, so an entry with a smaller id can
    appear after a larger one. ``upto`` is therefore the safe watermark (no entry at or below it can
    still appear), kept behind the entries younger than a safety lag; ``read_upto`` the highest entry
    read, and ``read_count``/``read_sum`` the count and sum of the ids read in (``upto``, ``read_upto``]:
    when the entries there no longer add up to them, one appeared late and the window is read again."""

    __tablename__ = "metric_journal"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)  # always 1
    upto: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    read_upto: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    read_count: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    read_sum: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)


class MetricMark(db.Model):
    """Where a case was counted when the journal last looked at it: the month of its sharing, its
    specialist, the specialist's institution and its pool. A change of any of them makes the old
    units dirty as well as the new ones (a case reassigned leaves its previous doctor's cells)."""

    __tablename__ = "metric_marks"

    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    month: so.Mapped[str | None] = so.mapped_column(sa.String(7))
    doctor_id: so.Mapped[int | None]
    institution_id: so.Mapped[int | None]
    pool_id: so.Mapped[int | None]


class MetricDirty(db.Model):
    """A unit whose cells of a stored month no longer match the cases, found by the journal at entry
    ``upto``; the next refresh of that month rebuilds the unit's cells only."""

    __tablename__ = "metric_dirty"

    kind: so.Mapped[str] = so.mapped_column(sa.String(12), primary_key=True)
    month: so.Mapped[str] = so.mapped_column(sa.String(7), primary_key=True)
    unit_id: so.Mapped[int] = so.mapped_column(primary_key=True)
    upto: so.Mapped[int] = so.mapped_column(sa.BigInteger)
