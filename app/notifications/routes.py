"""Notifications API: the inbox, marking read, and overdue cases."""

from flask import Blueprint, jsonify, request
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.cases.service import is_overdue, list_cases
from app.core.openapi import api_doc
from app.core.time import isoformat
from app.extensions import db
from app.notifications import service

bp = Blueprint("notifications", __name__, url_prefix="/api/notifications")


@bp.get("")
@api_login_required
@api_doc(responses={200: "notifications newest first, the unread count and the caller's overdue cases"})
def inbox():
    """Return the caller's notifications (``unread=1`` for unread only) and overdue cases."""
    unread_only = request.args.get("unread") in ("1", "true")
    items = service.inbox(user=current_user, unread_only=unread_only)
    overdue = [c for c in list_cases(viewer=current_user) if is_overdue(c)]
    return jsonify({
        "items": [{"id": n.id, "case_id": n.case_id, "kind": n.kind, "text": n.text,
                   "created_at": isoformat(n.created_at), "read": n.read_at is not None} for n in items],
        "unread": service.unread_count(user=current_user),
        "overdue": [{"case_id": c.id, "title": c.title, "status": c.status, "urgency": c.urgency,
                     "due_at": isoformat(c.due_at)} for c in overdue],
    })


@bp.post("/<int:notification_id>/read")
@api_login_required
@api_doc(responses={200: "marked read", 404: "not your notification"})
def mark_read(notification_id: int):
    """Mark one notification read."""
    service.mark_read(user=current_user, notification_id=notification_id)
    db.session.commit()
    return jsonify({"unread": service.unread_count(user=current_user)})


@bp.post("/read-all")
@api_login_required
@api_doc(responses={200: "all marked read"})
def mark_all_read():
    """Mark every notification of the caller read."""
    service.mark_read(user=current_user)
    db.session.commit()
    return jsonify({"unread": 0})
