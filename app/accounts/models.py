"""Institutions, users and API tokens."""

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy import orm as so
from sqlalchemy.ext.hybrid import hybrid_property

from app.core.db import in_list
from app.core.time import utcnow
from app.extensions import db

ROLES = ("doctor", "coordinator", "admin")
LEVELS = ("tertiary", "provincial", "county", "community")


class Institution(db.Model):
    """A hospital or health centre; level drives referral routing within a consortium."""

    __tablename__ = "institutions"
    __table_args__ = (sa.CheckConstraint(in_list("level", LEVELS), name="level"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    level: so.Mapped[str] = so.mapped_column(sa.String(20))
    region: so.Mapped[str] = so.mapped_column(sa.String(100), default="")

    users: so.WriteOnlyMapped["User"] = so.relationship(back_populates="institution")


class User(UserMixin, db.Model):
    """A doctor, coordinator or platform administrator."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(in_list("role", ROLES), name="role"),
        sa.CheckConstraint("email = lower(email)", name="email_lower"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(100))
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    specialty: so.Mapped[str] = so.mapped_column(sa.String(50), index=True)
    title: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    institution_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("institutions.id"), index=True)
    role: so.Mapped[str] = so.mapped_column(sa.String(20), default="doctor")
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    institution: so.Mapped[Institution] = so.relationship(back_populates="users", lazy="joined")

    # The browser login this object was loaded for or logged in with (accounts.service): Flask-Login
    # keeps its id, "<user id>:<token>", in the session and remember-me cookies (LoginManager.id_attribute
    # is get_login_id), so ending that login ends every copy of both cookies. Not stored on the row.
    login_id = None
    login_session_id = None

    def get_login_id(self) -> str | None:
        return self.login_id

    @property
    def is_active(self) -> bool:  # Flask-Login refuses sessions of deactivated accounts
        return self.active

    @hybrid_property
    def is_admin(self) -> bool:
        """Tell whether this is a platform administrator (also usable in queries: ``~User.is_admin``)."""
        return self.role == "admin"


class LoginSession(db.Model):
    """A browser login: its cookies name it, and logging out ends it, for copies of them too.

    Only the token's sha256 is stored (as for API tokens), so a database leak opens no session.
    """

    __tablename__ = "login_sessions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    ended_at: so.Mapped[datetime | None]


class ApiToken(db.Model):
    """A bearer token for the API; only its sha256 is stored, so a database leak reveals none."""

    __tablename__ = "api_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[datetime]
    revoked_at: so.Mapped[datetime | None]
    last_used_at: so.Mapped[datetime | None]

    user: so.Mapped[User] = so.relationship(lazy="joined")
