"""Organizations, who belongs to them, consortium institutions, routing rules and decisions."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import Institution, User
from app.core.db import in_list
from app.core.time import utcnow
from app.extensions import db

KINDS = ("department", "doctor_group", "consortium")
POOL_KINDS = ("department", "doctor_group")
MEMBER_ROLES = ("member", "coordinator", "admin")
SIDES = ("provider", "requester", "both")
SERVICES = ("remote_imaging", "remote_pathology", "mdt", "consultation")
URGENCIES = ("routine", "urgent", "emergency")
DECISIONS = ("routed", "assigned", "rerouted", "returned")


class Org(db.Model):
    """A department (inside one institution), a doctor group / consultation pool, or a consortium."""

    __tablename__ = "orgs"
    __table_args__ = (
        sa.CheckConstraint(in_list("kind", KINDS), name="kind"),
        sa.CheckConstraint("kind != 'department' OR institution_id IS NOT NULL", name="department_institution"),
        sa.CheckConstraint("parent_id IS NULL OR parent_id != id", name="not_own_parent"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    institution_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("institutions.id"), index=True)
    parent_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="SET NULL"), index=True)
    # {"routine": hours, "urgent": hours, "emergency": hours}; unset urgencies use the platform default.
    due_hours: so.Mapped[dict | None] = so.mapped_column(sa.JSON)
    services: so.Mapped[list | None] = so.mapped_column(sa.JSON)
    # Whether peer dashboards may show this org by name (otherwise anonymised).
    name_peers_ok: so.Mapped[bool] = so.mapped_column(default=False)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    institution: so.Mapped[Institution | None] = so.relationship(lazy="joined")


class OrgMember(db.Model):
    """A user's role in an org: member, coordinator (triage) or admin."""

    __tablename__ = "org_members"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "user_id", name="uq_org_members_org_user"),
        sa.CheckConstraint(in_list("role", MEMBER_ROLES), name="role"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    org_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: so.Mapped[str] = so.mapped_column(sa.String(20), default="member")
    added_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    user: so.Mapped[User] = so.relationship(lazy="joined")


class ConsortiumInstitution(db.Model):
    """A hospital in a consortium, providing consultations, requesting them, or both."""

    __tablename__ = "consortium_institutions"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "institution_id", name="uq_consortium_institutions_org_institution"),
        sa.CheckConstraint(in_list("side", SIDES), name="side"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    org_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    institution_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("institutions.id"), index=True)
    side: so.Mapped[str] = so.mapped_column(sa.String(10))
    added_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    institution: so.Mapped[Institution] = so.relationship(lazy="joined")


class RoutingRule(db.Model):
    """Specialty (and optionally urgency) → a pool or one named specialist, tried by priority.

    Fallback rules are tried only when no regular rule matched; a rule without a specialty
    matches any specialty.
    """

    __tablename__ = "routing_rules"
    __table_args__ = (
        sa.UniqueConstraint("consortium_id", "priority", name="uq_routing_rules_consortium_priority"),
        sa.CheckConstraint("urgency IS NULL OR " + in_list("urgency", URGENCIES), name="urgency"),
        sa.CheckConstraint("(target_org_id IS NULL) != (target_user_id IS NULL)", name="one_target"),
        sa.CheckConstraint("priority >= 0", name="priority"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    consortium_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    priority: so.Mapped[int]
    specialty: so.Mapped[str | None] = so.mapped_column(sa.String(50))
    urgency: so.Mapped[str | None] = so.mapped_column(sa.String(20))
    target_org_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="CASCADE"))
    target_user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    fallback: so.Mapped[bool] = so.mapped_column(default=False)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    target_org: so.Mapped[Org | None] = so.relationship(foreign_keys=[target_org_id], lazy="joined")
    target_user: so.Mapped[User | None] = so.relationship(foreign_keys=[target_user_id], lazy="joined")


class RoutingDecision(db.Model):
    """One routing step of a case: where it went, which rule or person chose, what was shown."""

    __tablename__ = "routing_decisions"
    __table_args__ = (sa.CheckConstraint(in_list("kind", DECISIONS), name="kind"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    # The org the case was sent to (a consortium or a pool), and the pool it ended in.
    org_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="SET NULL"))
    pool_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("orgs.id", ondelete="SET NULL"), index=True)
    rule_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("routing_rules.id", ondelete="SET NULL"))
    chosen_user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    reason: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    suggestions: so.Mapped[list | None] = so.mapped_column(sa.JSON)
    actor_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class Availability(db.Model):
    """A specialist's away period: not suggested and skipped by routing rules until then."""

    __tablename__ = "user_availability"

    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    away_until: so.Mapped[datetime | None]
    note: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)
