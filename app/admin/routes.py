"""Admin API: manage accounts and export the audit log. Admins see no clinical content here."""

from functools import wraps

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, stream_with_context
from flask_login import current_user
from pydantic import Field

from app.accounts import service as accounts
from app.accounts.auth import api_login_required
from app.accounts.models import Institution, User
from app.accounts.schemas import user_json
from app.audit import service as audit_log
from app.core.errors import DomainError, Forbidden, NotFound
from app.core.openapi import api_doc
from app.core.schemas import Schema, parse_body
from app.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


def admin_required(view):
    """Require a logged-in platform administrator; others get 403. An admin request that fails is audited too."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        action = f"admin.{view.__name__}"
        if not current_user.is_admin:
            audit_log.record_refusal(user_id=current_user.id, action=action, status=403)
            raise Forbidden("platform administrators only")
        admin_id = current_user.id  # read now: the rollback below expires the user
        try:
            return view(*args, **kwargs)
        except DomainError as exc:
            # An administrator's failed attempt (demoting the last admin, an unknown or taken account)
            # is an admin action too: without a row, the log showed only the attempts that succeeded.
            db.session.rollback()
            audit_log.record_outcome(user_id=admin_id, action=action, status=exc.status,
                                     detail={"error": exc.error, **kwargs})
            raise

    return api_login_required(wrapper)


class UserCreate(Schema):
    email: str = Field(max_length=254)
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=8, max_length=1024)
    specialty: str = Field(max_length=50)
    title: str = Field(default="", max_length=100)
    institution: str = Field(min_length=1, max_length=200)
    level: str = Field(default="tertiary", pattern="^(tertiary|provincial|county|community)$")
    role: str = Field(default="doctor", pattern="^(doctor|coordinator|admin)$")


class UserUpdate(Schema):
    active: bool | None = None
    role: str | None = Field(default=None, pattern="^(doctor|coordinator|admin)$")


@bp.get("/users")
@admin_required
@api_doc(responses={200: "every account", 403: "not an administrator"})
def list_users():
    """List every account with its state."""
    users = db.session.scalars(sa.select(User).join(Institution).order_by(User.id))
    items = [{**user_json(u), "active": u.active} for u in users]
    # Every account's name, email and institution: reading them is an admin action like the others.
    audit_log.record(user_id=current_user.id, action="admin.list_users")
    return jsonify({"items": items})


@bp.post("/users")
@admin_required
@api_doc(body=UserCreate, responses={201: "the new account", 409: "email taken"})
def create_user():
    """Create an account (the institution is created if new)."""
    body = parse_body(UserCreate)
    inst = accounts.get_or_create_institution(name=body.institution, level=body.level)
    user = accounts.create_user(email=body.email, password=body.password, name=body.name,
                                specialty=body.specialty, title=body.title, institution=inst, role=body.role)
    db.session.commit()
    audit_log.record(user_id=current_user.id, action="admin.create_user", status=201, detail={"user_id": user.id})
    return jsonify({**user_json(user), "active": user.active}), 201


@bp.patch("/users/<int:user_id>")
@admin_required
@api_doc(body=UserUpdate, responses={200: "the updated account",
                                     409: "the last active platform administrator would be deactivated or demoted"})
def update_user(user_id: int):
    """Deactivate or reactivate an account, or change its platform role."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    body = parse_body(UserUpdate)
    accounts.update_account(user, active=body.active, role=body.role)
    db.session.commit()
    audit_log.record(user_id=current_user.id, action="admin.update_user", detail={"user_id": user.id,
                     **body.model_dump(exclude_none=True)})
    return jsonify({**user_json(user), "active": user.active})


@bp.get("/audit.csv")
@admin_required
@api_doc(responses={200: "text/csv of the whole audit log"})
def audit_csv():
    """Export the whole audit log as CSV (streamed: the log is never held in memory whole)."""
    audit_log.record(user_id=current_user.id, action="admin.audit_export")
    return Response(stream_with_context(audit_log.export_csv()), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="huizhen-audit.csv"'})
