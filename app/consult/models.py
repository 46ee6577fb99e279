"""Chat messages and image annotations of a case room."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import User
from app.core.time import utcnow
from app.extensions import db

ANNOTATION_KINDS = ("arrow", "line", "ellipse", "text")


class Message(db.Model):
    """A chat message; seq numbers a case's messages 1, 2, 3 … with no gaps."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "seq", name="uq_messages_case_seq"),
        sa.UniqueConstraint("case_id", "author_id", "client_id", name="uq_messages_case_author_client"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    seq: so.Mapped[int]
    author_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    # Chosen by the sender's client so that a resend after a dropped connection is recognised.
    client_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    body: so.Mapped[str] = so.mapped_column(sa.Text)
    image_ref: so.Mapped[dict | None] = so.mapped_column(sa.JSON)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    author: so.Mapped[User] = so.relationship(lazy="joined")


class MessageCounter(db.Model):
    """The last seq used per case; incremented in one UPDATE, so concurrent senders serialise."""

    __tablename__ = "message_counters"

    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    last_seq: so.Mapped[int] = so.mapped_column(default=0)


class Annotation(db.Model):
    """A mark on one frame of an instance: an arrow, a measured line, an ellipse or a text."""

    __tablename__ = "annotations"
    __table_args__ = (sa.CheckConstraint(
        "kind IN ('arrow', 'line', 'ellipse', 'text')", name="kind"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: so.Mapped[str] = so.mapped_column(sa.String(64), index=True)
    frame: so.Mapped[int] = so.mapped_column(default=1)
    kind: so.Mapped[str] = so.mapped_column(sa.String(10))
    # Points in image pixel coordinates (column, row), so every zoom and screen agrees.
    points: so.Mapped[list] = so.mapped_column(sa.JSON)
    text: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    length_mm: so.Mapped[float | None]
    author_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    deleted_at: so.Mapped[datetime | None]

    author: so.Mapped[User] = so.relationship(lazy="joined")
