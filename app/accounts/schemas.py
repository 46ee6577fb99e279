"""Request bodies and JSON forms of accounts."""

from pydantic import Field

from app.accounts.models import Institution, User
from app.accounts.specialties import specialty_names
from app.core.openapi import AT, ID, TEXT, obj
from app.core.schemas import Query, Schema
from app.core.time import isoformat


class TokenRequest(Schema):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class SpecialistQuery(Query):
    specialty: str | None = Field(default=None, max_length=50)
    q: str | None = Field(default=None, max_length=100)
    case_id: int | None = None
    limit: int = Field(default=50, ge=1, le=200)


INSTITUTION_SCHEMA = obj({"id": ID, "name": TEXT, "level": TEXT, "region": {"type": ["string", "null"]}})
USER_SCHEMA = obj({"id": ID, "email": TEXT, "name": TEXT, "specialty": TEXT, "specialty_name": {},
                   "title": {"type": ["string", "null"]}, "role": TEXT, "institution": INSTITUTION_SCHEMA})
TOKEN_SCHEMA = obj({"token": TEXT, "token_type": {"const": "Bearer"}, "expires_at": AT, "user": USER_SCHEMA})


def institution_json(inst: Institution) -> dict:
    """Serialise an institution."""
    return {"id": inst.id, "name": inst.name, "level": inst.level, "region": inst.region}


def user_json(user: User) -> dict:
    """Serialise a user as the contract's user object."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "specialty": user.specialty,
        "specialty_name": specialty_names(user.specialty),
        "title": user.title,
        "role": user.role,
        "institution": institution_json(user.institution),
    }


def token_json(clear: str, record, user: User) -> dict:
    """Serialise a freshly issued API token and its owner."""
    return {"token": clear, "token_type": "Bearer", "expires_at": isoformat(record.expires_at),
            "user": user_json(user)}
