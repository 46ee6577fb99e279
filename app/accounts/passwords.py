"""Argon2id password hashing, with cost parameters from the config."""

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


def _hasher() -> PasswordHasher:
    cfg = current_app.config
    return PasswordHasher(time_cost=cfg["ARGON2_TIME_COST"], memory_cost=cfg["ARGON2_MEMORY_COST"])


def hash_password(password: str) -> str:
    """Return an Argon2id hash of the password."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against its stored hash without raising."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_dummy_hashes: dict[tuple[int, int], str] = {}


def burn_verification(password: str) -> None:
    """Spend the time of one verification, so an unknown email answers as slowly as a known one."""
    h = _hasher()
    key = (h.time_cost, h.memory_cost)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = h.hash(secrets.token_hex(16))
    verify_password(_dummy_hashes[key], password)
