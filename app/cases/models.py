"""A case: the patient problem a referring doctor brings, and who works on it."""

import secrets
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import orm as so
from sqlalchemy.dialects.postgresql import TSVECTOR

from app.accounts.models import User
from app.core.db import in_list
from app.core.time import utcnow
from app.extensions import db

if TYPE_CHECKING:
    from app.orgs.models import Org

STATUSES = ("draft", "submitted", "accepted", "declined", "info_requested", "answered", "closed", "withdrawn")
URGENCIES = ("routine", "urgent", "emergency")
SEXES = ("female", "male", "other", "unknown")
# The close-out survey: what happened to the patient, and what the advice was worth.
OUTCOMES = ("referral_avoided", "referral_needed", "already_planned", "other")
ADVICE_VALUES = ("confirmed_plan", "new_advice", "not_useful")


class Case(db.Model):
    """A consultation request with its clinical question; images hang off it."""

    __tablename__ = "cases"
    __table_args__ = (
        sa.CheckConstraint(in_list("status", STATUSES), name="status"),
        sa.CheckConstraint(in_list("urgency", URGENCIES), name="urgency"),
        sa.CheckConstraint(in_list("patient_sex", SEXES), name="patient_sex"),
        sa.CheckConstraint("patient_age IS NULL OR (patient_age >= 0 AND patient_age <= 150)", name="patient_age"),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
        sa.CheckConstraint("outcome IS NULL OR " + in_list("outcome", OUTCOMES), name="outcome"),
        sa.CheckConstraint("advice IS NULL OR " + in_list("advice", ADVICE_VALUES), name="advice"),
        sa.Index("ix_cases_search_tsv", "search_tsv", postgresql_using="gin", postgresql_with={"fastupdate": "off"}),
        # A pool's cases, by date: a coordinator's search with a date range reads only that range's rows.
        sa.Index("ix_cases_pool_created", "pool_id", "created_at"),
        # Newest first: a list without words for someone who sees many cases (a pool's coordinator) walks
        # this backwards and stops at the page, instead of reading and sorting all their cases.
        sa.Index("ix_cases_created_id", "created_at", "id"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    owner_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    consultant_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    title: so.Mapped[str] = so.mapped_column(sa.String(200))
    clinical_question: so.Mapped[str] = so.mapped_column(sa.Text)
    summary: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    specialty: so.Mapped[str | None] = so.mapped_column(sa.String(50))
    patient_age: so.Mapped[int | None]
    patient_sex: so.Mapped[str] = so.mapped_column(sa.String(10), default="unknown")
    urgency: so.Mapped[str] = so.mapped_column(sa.String(20), default="routine")
    status: so.Mapped[str] = so.mapped_column(sa.String(20), default="draft", index=True)
    # Per-case secret from which de-identified DICOM UIDs are derived; never leaves the server.
    uid_secret: so.Mapped[str] = so.mapped_column(sa.String(64), default=lambda: secrets.token_hex(32))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)
    # When it was last shared, and by when an opinion is expected (set from the urgency).
    submitted_at: so.Mapped[datetime | None]
    due_at: so.Mapped[datetime | None]
    accepted_at: so.Mapped[datetime | None]
    answered_at: so.Mapped[datetime | None]
    closed_at: so.Mapped[datetime | None]
    rating: so.Mapped[int | None]
    rating_comment: so.Mapped[str | None] = so.mapped_column(sa.Text)
    # The close-out survey (cases closed before it existed keep NULL).
    outcome: so.Mapped[str | None] = so.mapped_column(sa.String(20))
    advice: so.Mapped[str | None] = so.mapped_column(sa.String(20))
    # The triage pool (an org) the case waits in or was assigned from; None when shared by name.
    pool_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="SET NULL"))
    # The due clock stops while information is requested: since when, and how long in total.
    paused_at: so.Mapped[datetime | None]
    paused_seconds: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    # PostgreSQL: a copy of case_search.tsv kept by app/cases/search.py, so one bitmap scan of this
    # table ANDs the words with visibility and filters. Never loaded; empty on SQLite (FTS5 there).
    search_tsv: so.Mapped[str | None] = so.mapped_column(sa.Text().with_variant(TSVECTOR(), "postgresql"),
                                                         deferred=True)

    owner: so.Mapped[User] = so.relationship(foreign_keys=[owner_id], lazy="joined")
    consultant: so.Mapped[User | None] = so.relationship(foreign_keys=[consultant_id], lazy="joined")
    # The pool's name for lists (joined by the list query; read-only here: pool_id is what is written).
    pool: so.Mapped["Org | None"] = so.relationship(foreign_keys=[pool_id], viewonly=True)


class CaseEvent(db.Model):
    """One step of a case's timeline: a status change or another recorded action, with who and why."""

    __tablename__ = "case_events"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    actor_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    action: so.Mapped[str] = so.mapped_column(sa.String(40))
    from_status: so.Mapped[str | None] = so.mapped_column(sa.String(20))
    to_status: so.Mapped[str | None] = so.mapped_column(sa.String(20))
    note: so.Mapped[str | None] = so.mapped_column(sa.Text)
    data: so.Mapped[dict | None] = so.mapped_column(sa.JSON)

    actor: so.Mapped[User] = so.relationship(lazy="joined")


class Participant(db.Model):
    """A colleague the consultant brought into the case, for one discipline."""

    __tablename__ = "participants"
    __table_args__ = (sa.UniqueConstraint("case_id", "user_id", name="uq_participants_case_user"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    discipline: so.Mapped[str] = so.mapped_column(sa.String(50))
    invited_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    added_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    removed_at: so.Mapped[datetime | None]

    user: so.Mapped[User] = so.relationship(foreign_keys=[user_id], lazy="joined")


class DisciplineReport(db.Model):
    """A discipline's contribution (e.g. the radiology read) that the opinion can draw on."""

    __tablename__ = "discipline_reports"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    discipline: so.Mapped[str] = so.mapped_column(sa.String(50))
    body: so.Mapped[str] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)

    author: so.Mapped[User] = so.relationship(lazy="joined")


class Opinion(db.Model):
    """A version of the consultation opinion: one editable draft, then signed versions (frozen)."""

    __tablename__ = "opinions"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "version", name="uq_opinions_case_version"),
        sa.CheckConstraint("state IN ('draft', 'signed')", name="state"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    version: so.Mapped[int]
    state: so.Mapped[str] = so.mapped_column(sa.String(10), default="draft")
    content: so.Mapped[dict] = so.mapped_column(sa.JSON)
    author_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    signed_at: so.Mapped[datetime | None]
    content_sha256: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    amendment_reason: so.Mapped[str | None] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)

    author: so.Mapped[User] = so.relationship(lazy="joined")


class CaseSearch(db.Model):
    """A case's search document (app/core/fulltext.py): title tokens, the other texts' tokens, and on
    PostgreSQL their tsvector; on SQLite the FTS5 table ``case_search_fts`` mirrors it."""

    __tablename__ = "case_search"
    __table_args__ = (sa.Index("ix_case_search_tsv", "tsv", postgresql_using="gin"),)

    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True,
                                               autoincrement=False)
    title: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    body: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    tsv: so.Mapped[str | None] = so.mapped_column(sa.Text().with_variant(TSVECTOR(), "postgresql"))
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)
