"""Notifications API: the inbox, marking read, and overdue cases."""

from flask import Blueprint, jsonify
from flask_login import current_user

from app.accounts.auth import api_login_required
from app.cases.service import overdue_cases
from app.core.openapi import api_doc
from app.core.schemas import parse_query
from app.extensions import db
from app.notifications import service
from app.notifications.schemas import InboxQuery, notification_json, overdue_json

bp = Blueprint("notifications", __name__, url_prefix="/api/notifications")


@bp.get("")
@api_login_required
@api_doc(query=InboxQuery,
         responses={200: "notifications newest first, the unread count and the caller's overdue cases"})
def inbox():
    """Return the caller's notifications (``unread=1`` for unread only) and overdue cases."""
    query = parse_query(InboxQuery)
    items = service.inbox(user=current_user, unread_only=query.unread_only)
    return jsonify({
        "items": [notification_json(n) for n in items],
        "unread": service.unread_count(user=current_user),
        "overdue": [overdue_json(c) for c in overdue_cases(viewer=current_user)],
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
