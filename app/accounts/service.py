"""Accounts: creating users, logging in, API tokens and the specialist directory."""

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import ApiToken, Institution, LoginSession, User
from app.accounts.passwords import burn_verification, hash_password, verify_password
from app.accounts.specialties import SPECIALTIES
from app.core.errors import BadRequest, Conflict
from app.core.time import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

TOKEN_PREFIX = "hz_"  # noqa: S105 - a public prefix that marks Huizhen tokens, not a secret
# A token's last use is recorded at most this often: a busy client must not write on every request.
TOKEN_USE_RESOLUTION = timedelta(seconds=60)


def normalise_email(email: str) -> str:
    """Return the canonical (trimmed, lower-case) form of an email address."""
    return (email or "").strip().lower()


def get_or_create_institution(*, name: str, level: str, region: str = "") -> Institution:
    """Return the institution with this name, creating it if needed."""
    inst = db.session.scalar(sa.select(Institution).where(Institution.name == name))
    if inst is None:
        inst = Institution(name=name, level=level, region=region)
        db.session.add(inst)
        db.session.flush()
    return inst


def create_user(
    *,
    email: str,
    password: str,
    name: str,
    specialty: str,
    institution: Institution,
    title: str = "",
    role: str = "doctor",
) -> User:
    """Create an account; raises Conflict if the email is taken and BadRequest on bad fields."""
    email = normalise_email(email)
    if "@" not in email:
        raise BadRequest("invalid email", {"email": email})
    if specialty not in SPECIALTIES:
        raise BadRequest("unknown specialty", {"specialty": specialty, "known": sorted(SPECIALTIES)})
    if len(password) < 8:
        raise BadRequest("password too short", "at least 8 characters")
    if db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict("email already registered")
    user = User(
        email=email,
        password_hash=hash_password(password),
        name=name,
        specialty=specialty,
        title=title,
        institution=institution,
        role=role,
    )
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(*, email: str, password: str) -> User | None:
    """Return the active user with these credentials, or None."""
    email = normalise_email(email)
    # The login form hands its raw text over: an address with a NUL names no account, and asking
    # PostgreSQL about one would fail (its text cannot hold NUL), a 500 instead of a wrong login.
    user = None if "\x00" in email else db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        burn_verification(password)
        return None
    if not verify_password(user.password_hash, password) or not user.active:
        return None
    return user


def _token_digest(token: str) -> str:
    # Tokens are 256 random bits, so a plain sha256 is enough to store them safely.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(*, user: User, ttl: timedelta | None = None) -> tuple[str, ApiToken]:
    """Create an API token for the user; the clear token is returned once and never stored."""
    ttl = ttl or timedelta(hours=current_app.config["API_TOKEN_TTL_HOURS"])
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user=user, token_hash=_token_digest(clear), expires_at=utcnow() + ttl)
    db.session.add(record)
    db.session.flush()
    return clear, record


@dataclass(frozen=True)
class _KnownToken:
    id: int
    user_id: int
    token_hash: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    until: float  # time.monotonic() after which the database is asked again


def _known_tokens() -> dict[str, _KnownToken]:
    # A valid token's lookup is kept API_TOKEN_CACHE_SECONDS per process. A revocation through this
    # process drops it at once; one made by another process (or straight in the database) is
    # honoured within that bound. The user is re-read on every request, so deactivation is at once.
    # One cache per app, as the audit memo: ids are only unique within one database.
    return current_app.extensions.setdefault("known_tokens", {})


def _remember(record: ApiToken) -> None:
    seconds = current_app.config["API_TOKEN_CACHE_SECONDS"]
    if seconds <= 0:
        return
    _known_tokens()[record.token_hash] = _KnownToken(
        record.id, record.user_id, record.token_hash, record.created_at, record.expires_at, record.last_used_at,
        time.monotonic() + seconds)


def _from_cache(known: _KnownToken, user: User) -> ApiToken:
    """Return the token's record as loaded (persistent, unchanged) without asking the database."""
    record = ApiToken(id=known.id, user_id=known.user_id, token_hash=known.token_hash, created_at=known.created_at,
                      expires_at=known.expires_at, revoked_at=None, last_used_at=known.last_used_at)
    make_transient_to_detached(record)
    record = db.session.merge(record, load=False)
    set_committed_value(record, "user", user)
    return record


def user_for_token(token: str) -> tuple[User, ApiToken] | None:
    """Return the user and token record for a valid, unexpired, unrevoked token (lookup cached briefly)."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    digest, now = _token_digest(token), utcnow()
    known = _known_tokens().get(digest)
    if known is not None and known.until > time.monotonic() and known.expires_at > now:
        user = db.session.get(User, known.user_id)
        if user is None or not user.active:
            return None
        record = _from_cache(known, user)
    else:
        _known_tokens().pop(digest, None)
        record = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest))
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return None
        if not record.user.active:
            return None
        _remember(record)
    if _note_use(record.id, record.last_used_at, now):
        set_committed_value(record, "last_used_at", now)  # already stored: not a pending change
        _noted(digest, now)
    return record.user, record


def user_id_for_token(token: str) -> int | None:
    """Return the user id of a valid, unexpired, unrevoked token, without loading the user.

    For hot API paths that check the user in a query of their own: the caller must refuse a
    deactivated user (``cases.permissions.require_ids`` does). Same cache as :func:`user_for_token`.
    """
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    digest, now = _token_digest(token), utcnow()
    known = _known_tokens().get(digest)
    if known is None or known.until <= time.monotonic() or known.expires_at <= now:
        found = user_for_token(token)  # asks the database and remembers the token
        return None if found is None else found[0].id
    if _note_use(known.id, known.last_used_at, now):
        _noted(digest, now)
    return known.user_id


def _noted(digest: str, now: datetime) -> None:
    entry = _known_tokens().get(digest)
    if entry is not None:
        _known_tokens()[digest] = replace(entry, last_used_at=now)


def _note_use(token_id: int, last_used_at: datetime | None, now: datetime) -> bool:
    stale = now - TOKEN_USE_RESOLUTION
    if last_used_at is not None and last_used_at > stale:
        return False
    # Its own short transaction, so read-only requests record the use too; the condition keeps
    # concurrent requests (or processes) with the same token to one write a minute.
    with db.engine.begin() as conn:
        conn.execute(sa.update(ApiToken).where(
            ApiToken.id == token_id, sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale),
        ).values(last_used_at=now))
    return True


# ---- administration ----------------------------------------------------------------------

def update_account(user: User, *, active: bool | None = None, role: str | None = None) -> None:
    """Deactivate or reactivate an account, or change its platform role (not committed).

    Deactivating ends the account's way back in: its API tokens are revoked and its browser logins
    ended, so a reactivation later gives back none of them (they were issued to the account before).
    The last active platform administrator can be neither deactivated nor demoted (409): nobody
    could administer the platform after.
    """
    stays_admin = (user.active if active is None else active) and (user.role if role is None else role) == "admin"
    if user.active and user.is_admin and not stays_admin:
        # The active admins' rows locked in one order: two admins demoting each other at once are
        # decided one after the other, and the second sees the first's change (PostgreSQL).
        admins = db.session.scalars(sa.select(User.id).where(User.is_admin, User.active.is_(True))
                                    .order_by(User.id).with_for_update()).all()
        if not [other for other in admins if other != user.id]:
            raise Conflict("the last active platform administrator cannot be deactivated or demoted")
    if active is False and user.active:
        now = utcnow()
        db.session.execute(sa.update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                           .values(revoked_at=now))
        db.session.execute(sa.update(LoginSession).where(LoginSession.user_id == user.id,
                                                         LoginSession.ended_at.is_(None)).values(ended_at=now))
        known = _known_tokens()
        for digest in [d for d, k in known.items() if k.user_id == user.id]:
            known.pop(digest, None)
    if active is not None:
        user.active = active
    if role is not None:
        user.role = role


# ---- browser logins ----------------------------------------------------------------------

def start_login_session(user: User) -> None:
    """Record a new browser login of the user and name it on the user object (``login_id``).

    Flask-Login then stores that id in the session cookie (and the remember-me cookie): the user's
    id and a random token, whose sha256 alone is kept here.
    """
    token = secrets.token_urlsafe(32)
    record = LoginSession(user_id=user.id, token_hash=_token_digest(token))
    db.session.add(record)
    db.session.commit()
    user.login_id, user.login_session_id = f"{user.id}:{token}", record.id
    _drop_dead_logins()


def _drop_dead_logins() -> None:
    """Drop every user's logins that ended or expired: they open nothing any more, so the table holds about
    one row per live login (and no login history of those who never come back). Done at each login, after it
    is committed, as a cleanup that may fail: two logins dropping the same rows at once must not fail one."""
    try:
        db.session.execute(sa.delete(LoginSession).where(sa.not_(_live_login())))
        db.session.commit()
    except sa.exc.DBAPIError as exc:
        db.session.rollback()
        log.warning("ended logins not dropped this time: %s", type(exc).__name__)


def _live_login():
    """The SQL condition of a browser login that still opens: not ended, not older than LOGIN_SESSION_DAYS."""
    since = utcnow() - timedelta(days=current_app.config["LOGIN_SESSION_DAYS"])
    return sa.and_(LoginSession.ended_at.is_(None), LoginSession.created_at > since)


def user_for_login_id(login_id: str) -> User | None:
    """Return the user of a browser login that has not ended nor outlived LOGIN_SESSION_DAYS (Flask-Login's
    user loader), or None.

    One query (the login and its user); an id of the old form, a bare user id, names no login.
    """
    user_id, _, token = login_id.partition(":")
    if not user_id.isdigit() or not token:
        return None
    found = db.session.execute(
        sa.select(User, LoginSession.id).join(LoginSession, LoginSession.user_id == User.id)
        .where(LoginSession.token_hash == _token_digest(token), LoginSession.user_id == int(user_id),
               _live_login())).first()
    if found is None:
        return None
    user, session_id = found
    user.login_id, user.login_session_id = login_id, session_id
    return user


def end_login_session(user: User) -> None:
    """End the browser login the user object was loaded for: its cookies, and every copy of them, stop working."""
    if user.login_session_id is not None:
        db.session.execute(sa.update(LoginSession).where(LoginSession.id == user.login_session_id,
                                                         LoginSession.ended_at.is_(None))
                           .values(ended_at=utcnow()))
        db.session.commit()


def live_login_sessions(*, session_ids: set[int]) -> set[int]:
    """Return those of the browser logins that have not ended nor outlived LOGIN_SESSION_DAYS."""
    if not session_ids:
        return set()
    return set(db.session.scalars(sa.select(LoginSession.id).where(
        LoginSession.id.in_(session_ids), _live_login())))


def live_tokens(*, token_ids: set[int]) -> set[int]:
    """Return those of the token ids that are still valid: not revoked, not expired, user active."""
    if not token_ids:
        return set()
    return set(db.session.scalars(
        sa.select(ApiToken.id).join(User, ApiToken.user_id == User.id)
        .where(ApiToken.id.in_(token_ids), ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow(),
               User.active.is_(True))))


def active_user_ids(*, user_ids: set[int]) -> set[int]:
    """Return those of the user ids whose account is active."""
    if not user_ids:
        return set()
    return set(db.session.scalars(sa.select(User.id).where(User.id.in_(user_ids), User.active.is_(True))))


def revoke_token(*, record: ApiToken) -> None:
    """Revoke an API token at once (this process forgets it now; others within API_TOKEN_CACHE_SECONDS)."""
    record.revoked_at = utcnow()
    _known_tokens().pop(record.token_hash, None)


# ---- the specialist directory -------------------------------------------------------------

def find_doctors(*, viewer: User, specialty: str | None = None, q: str | None = None,
                 exclude: set[int] | None = None) -> list[User]:
    """Return active doctors other than the viewer matching the specialty and the text query."""
    stmt = (
        sa.select(User)
        .join(Institution)
        .where(User.active.is_(True), ~User.is_admin, User.id != viewer.id)
    )
    if exclude:
        stmt = stmt.where(User.id.not_in(exclude))
    if specialty:
        if specialty not in SPECIALTIES:
            raise BadRequest("unknown specialty", {"specialty": specialty, "known": sorted(SPECIALTIES)})
        stmt = stmt.where(User.specialty == specialty)
    q = (q or "").strip()
    if q:
        # The words literally: "%" and "_" in them are not wildcards.
        text_match = [column.icontains(q, autoescape=True)
                      for column in (User.name, User.title, Institution.name, Institution.region, User.specialty)]
        # Chinese or English specialty names match too, e.g. q=放射.
        codes = [c for c, (zh, en) in SPECIALTIES.items() if q.lower() in zh.lower() or q.lower() in en.lower()]
        if codes:
            text_match.append(User.specialty.in_(codes))
        stmt = stmt.where(sa.or_(*text_match))
    return list(db.session.scalars(stmt))
