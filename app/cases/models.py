"""A case: the patient problem a referring doctor brings, and who works on it."""

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import User
from app.core.time import utcnow
from app.extensions import db

STATUSES = ("draft", "submitted", "accepted", "declined", "info_requested", "answered", "closed", "withdrawn")
URGENCIES = ("routine", "urgent", "emergency")
SEXES = ("female", "male", "other", "unknown")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Case(db.Model):
    """A consultation request with its clinical question; images hang off it."""

    __tablename__ = "cases"
    __table_args__ = (
        sa.CheckConstraint(_in("status", STATUSES), name="status"),
        sa.CheckConstraint(_in("urgency", URGENCIES), name="urgency"),
        sa.CheckConstraint(_in("patient_sex", SEXES), name="patient_sex"),
        sa.CheckConstraint("patient_age IS NULL OR (patient_age >= 0 AND patient_age <= 150)", name="patient_age"),
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

    owner: so.Mapped[User] = so.relationship(foreign_keys=[owner_id], lazy="joined")
    consultant: so.Mapped[User | None] = so.relationship(foreign_keys=[consultant_id], lazy="joined")
