"""Share links: create, list, revoke, and resolve a token to the link it opens."""

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case
from app.cases.permissions import Action, can
from app.core.errors import DomainError, NotFound, Unauthorized
from app.core.time import utcnow
from app.dicomweb.models import ShareLink
from app.extensions import db

TOKEN_PREFIX = "hzl_"  # noqa: S105 - a prefix that tells link tokens apart, not a secret
# What each scope lets the holder do; the creator's own permissions bound it as well.
SCOPE_ACTIONS = {"read": frozenset({Action.VIEW, Action.DOWNLOAD}),
                 "read_write": frozenset({Action.VIEW, Action.DOWNLOAD, Action.UPLOAD})}


class LinkExpired(Unauthorized):
    error = "link expired"


def _digest(token: str) -> str:
    # 256 random bits: a plain sha256 is enough to store them safely.
    return hashlib.sha256(token.encode()).hexdigest()


def create_link(*, case: Case, user: User, scope: str, expires_in_hours: float, label: str) -> tuple[str, ShareLink]:
    """Create a link to the case; return the clear token (shown once) and the row."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    link = ShareLink(case_id=case.id, scope=scope, label=label, token_hash=_digest(token), created_by_id=user.id,
                     expires_at=utcnow() + timedelta(hours=expires_in_hours))
    db.session.add(link)
    db.session.commit()
    return token, link


def case_links(case: Case) -> list[ShareLink]:
    """Return the case's links, newest first (revoked and expired ones too)."""
    return list(db.session.scalars(
        sa.select(ShareLink).where(ShareLink.case_id == case.id).order_by(ShareLink.id.desc())))


def revoke_link(*, case: Case, link_id: int) -> ShareLink:
    """Revoke a link of the case at once (revoking twice is harmless)."""
    link = db.session.scalar(sa.select(ShareLink).where(ShareLink.case_id == case.id, ShareLink.id == link_id))
    if link is None:
        raise NotFound("link not found")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
    db.session.commit()
    return link


def link_state(link: ShareLink) -> str:
    """Tell whether a link is active, expired or revoked."""
    if link.revoked_at is not None:
        return "revoked"
    return "expired" if link.expires_at <= utcnow() else "active"


def find_link(token: str) -> ShareLink:
    """Return the link of a token, or raise NotFound."""
    link = db.session.scalar(sa.select(ShareLink).where(ShareLink.token_hash == _digest(token or "")))
    if link is None:
        raise NotFound("link not found")
    return link


def check_link(link: ShareLink, action: Action) -> Case:
    """Return the case the link opens for the action; raise 404 (revoked), 401 (expired) or 403."""
    if link.revoked_at is not None:
        raise NotFound("link not found")
    if link.expires_at <= utcnow():
        raise LinkExpired()
    case = db.session.get(Case, link.case_id)
    creator = db.session.get(User, link.created_by_id)
    # A link acts for the doctor who made it: when they leave the case, their links stop working.
    if case is None or creator is None or not creator.active or not can(creator, case, Action.VIEW):
        raise NotFound("link not found")
    if action not in SCOPE_ACTIONS[link.scope] or not can(creator, case, action):
        raise DomainError(f"this link does not allow: {action.value}", {"scope": link.scope}, status=403)
    return case
