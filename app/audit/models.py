"""Audit events: who did or tried what, on which case, from where. Never updated, never deleted."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import orm as so

from app.core.time import utcnow
from app.extensions import db


class AuditEvent(db.Model):
    """One access or action, allowed or denied (status is the HTTP status it got)."""

    __tablename__ = "audit_events"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    user_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    case_id: so.Mapped[int | None] = so.mapped_column(index=True)  # no FK: denied probes name any id
    action: so.Mapped[str] = so.mapped_column(sa.String(60))
    status: so.Mapped[int] = so.mapped_column(default=200)
    detail: so.Mapped[dict | None] = so.mapped_column(sa.JSON)
    ip: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    user_agent: so.Mapped[str | None] = so.mapped_column(sa.String(300))


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete an audit row."""


def _guard(session, flush_context, instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError("the audit log is append-only")


event.listen(so.Session, "before_flush", _guard)

# The database refuses as well (triggers created by the migration that adds this table).
