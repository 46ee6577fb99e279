"""Accounts: creating users, logging in, API tokens and the specialist directory."""

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.accounts.models import ApiToken, Institution, User
from app.accounts.passwords import burn_verification, hash_password, verify_password
from app.accounts.specialties import LEVEL_RANK, SPECIALTIES, specialty_names
from app.core.errors import BadRequest, Conflict
from app.core.time import utcnow
from app.extensions import db

TOKEN_PREFIX = "hz_"  # noqa: S105 - a public prefix that marks Huizhen tokens, not a secret


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
    user = db.session.scalar(sa.select(User).where(User.email == normalise_email(email)))
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


def user_for_token(token: str) -> tuple[User, ApiToken] | None:
    """Return the user and token record for a valid, unexpired, unrevoked token."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    record = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _token_digest(token)))
    now = utcnow()
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return None
    if not record.user.active:
        return None
    return record.user, record


def revoke_token(*, record: ApiToken) -> None:
    """Revoke an API token at once."""
    record.revoked_at = utcnow()


# ---- the specialist directory -------------------------------------------------------------

@dataclass
class DirectoryEntry:
    """A specialist as the directory ranks them, with the reasons shown to the referrer."""

    user: User
    open_cases: int
    score: float
    reasons: list[str] = field(default_factory=list)


def search_specialists(*, viewer: User, specialty: str | None = None, q: str | None = None,
                       limit: int = 50) -> list[DirectoryEntry]:
    """Find active doctors other than the viewer, ranked best match first."""
    stmt = (
        sa.select(User)
        .join(Institution)
        .where(User.active.is_(True), User.role != "admin", User.id != viewer.id)
    )
    if specialty:
        if specialty not in SPECIALTIES:
            raise BadRequest("unknown specialty", {"specialty": specialty, "known": sorted(SPECIALTIES)})
        stmt = stmt.where(User.specialty == specialty)
    q = (q or "").strip()
    if q:
        pattern = f"%{q}%"
        text_match = [User.name.ilike(pattern), User.title.ilike(pattern),
                      Institution.name.ilike(pattern), Institution.region.ilike(pattern),
                      User.specialty.ilike(pattern)]
        # Chinese or English specialty names match too, e.g. q=放射.
        codes = [c for c, (zh, en) in SPECIALTIES.items() if q.lower() in zh.lower() or q.lower() in en.lower()]
        if codes:
            text_match.append(User.specialty.in_(codes))
        stmt = stmt.where(sa.or_(*text_match))
    users = list(db.session.scalars(stmt))
    from app.cases.service import open_case_counts  # the directory ranks by case workload

    workload = open_case_counts([u.id for u in users])
    entries = [_rank(u, workload.get(u.id, 0), specialty) for u in users]
    entries.sort(key=lambda e: (-e.score, e.open_cases, e.user.name))
    return entries[:limit]


def _rank(user: User, open_cases: int, specialty: str | None) -> DirectoryEntry:
    level = user.institution.level
    score = LEVEL_RANK.get(level, 0) * 10.0 - open_cases * 2.0
    reasons = []
    if specialty and user.specialty == specialty:
        score += 50
        reasons.append(f"specialty: {specialty_names(specialty)['zh']} ({specialty})")
    reasons.append(f"hospital level: {level}")
    reasons.append(f"open cases: {open_cases}")
    return DirectoryEntry(user=user, open_cases=open_cases, score=score, reasons=reasons)
