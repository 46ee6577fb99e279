"""Query models and JSON forms of the notifications inbox."""

from app.cases.models import Case
from app.core.schemas import Query
from app.core.time import isoformat
from app.notifications.models import Notification


class InboxQuery(Query):
    """``unread=1`` (or ``true``) lists only unread notifications."""

    unread: str | None = None

    @property
    def unread_only(self) -> bool:
        return self.unread in ("1", "true")


def notification_json(n: Notification) -> dict:
    """Serialise one notification."""
    return {"id": n.id, "case_id": n.case_id, "kind": n.kind, "text": n.text,
            "created_at": isoformat(n.created_at), "read": n.read_at is not None}


def overdue_json(c: Case) -> dict:
    """Serialise an overdue case as the inbox lists it."""
    return {"case_id": c.id, "title": c.title, "status": c.status, "urgency": c.urgency,
            "due_at": isoformat(c.due_at)}
