"""The teaching collection: a closed case's read-only copy, proposed by its consultant to an org."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so
from sqlalchemy.dialects.postgresql import TSVECTOR

from app.core.db import in_list
from app.core.time import utcnow
from app.extensions import db

STATES = ("proposed", "published", "refused")
DIFFICULTIES = ("basic", "intermediate", "advanced")
DISAGREEMENTS = ("minor", "major")  # the peer-review scores a teaching case can come from


class TeachingCase(db.Model):
    """A proposal (then, once the referring doctor agrees, a published copy) of a case for an org's
    teaching collection: the question, reports, signed opinion and note, copied when proposed."""

    __tablename__ = "teaching_cases"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "org_id", name="uq_teaching_cases_case_org"),
        sa.CheckConstraint(in_list("state", STATES), name="state"),
        sa.CheckConstraint(in_list("difficulty", DIFFICULTIES), name="difficulty"),
        sa.CheckConstraint(in_list("disagreement", DISAGREEMENTS), name="disagreement"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    org_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    proposed_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    state: so.Mapped[str] = so.mapped_column(sa.String(20), default="proposed", index=True)
    note: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    specialty: so.Mapped[str | None] = so.mapped_column(sa.String(50), index=True)
    keywords: so.Mapped[list] = so.mapped_column(sa.JSON, default=list)
    difficulty: so.Mapped[str] = so.mapped_column(sa.String(20), default="intermediate")
    # The copy: {"title", "question", "patient", "studies", "reports": [...], "opinion": {...}}; no names.
    content: so.Mapped[dict] = so.mapped_column(sa.JSON)
    # The referring hospital's name, only when the referring doctor agreed to show it.
    hospital_name: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    # Proposed from a blinded peer review's disagreement: which review (never shown; it names no one)
    # and its score, kept with the copy should the review go. The note is then the review's note.
    peer_review_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("peer_reviews.id", ondelete="SET NULL"), index=True)
    disagreement: so.Mapped[str | None] = so.mapped_column(sa.String(10))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    decided_at: so.Mapped[datetime | None]


class TeachingSearch(db.Model):
    """A teaching case's search document, like ``case_search`` (app/core/fulltext.py)."""

    __tablename__ = "teaching_search"
    __table_args__ = (sa.Index("ix_teaching_search_tsv", "tsv", postgresql_using="gin"),)

    teaching_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("teaching_cases.id", ondelete="CASCADE"),
                                                   primary_key=True, autoincrement=False)
    title: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    body: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    tsv: so.Mapped[str | None] = so.mapped_column(sa.Text().with_variant(TSVECTOR(), "postgresql"))
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)
