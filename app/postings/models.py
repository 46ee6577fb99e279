"""A posting: an institution's need (demand) or offer (supply) of a service."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import Institution
from app.core.db import in_list
from app.core.time import utcnow
from app.extensions import db

KINDS = ("demand", "supply")
SERVICES = ("remote_imaging", "remote_pathology", "mdt", "consultation", "training", "visiting_expert")
STATES = ("open", "matched", "closed")


class Posting(db.Model):
    """What an institution needs or offers, e.g. remote pathology reads, 30 a month."""

    __tablename__ = "postings"
    __table_args__ = (
        sa.CheckConstraint(in_list("kind", KINDS), name="kind"),
        sa.CheckConstraint(in_list("service", SERVICES), name="service"),
        sa.CheckConstraint(in_list("state", STATES), name="state"),
        sa.CheckConstraint("capacity_per_month IS NULL OR capacity_per_month >= 0", name="capacity"),
        sa.Index("ix_postings_kind_service", "kind", "service"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(10))
    institution_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("institutions.id"), index=True)
    service: so.Mapped[str] = so.mapped_column(sa.String(30))
    specialty: so.Mapped[str | None] = so.mapped_column(sa.String(50))
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    capacity_per_month: so.Mapped[int | None]
    state: so.Mapped[str] = so.mapped_column(sa.String(10), default="open")
    created_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    # The counterpart a member of this posting's institution accepted, and who: a match forms only
    # once both sides have accepted each other.
    accepted_other_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("postings.id", ondelete="SET NULL"))
    accepted_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # The consortium an accepted match put both institutions in.
    matched_org_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    institution: so.Mapped[Institution] = so.relationship(lazy="joined")
