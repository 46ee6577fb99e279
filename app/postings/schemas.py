"""Request bodies and JSON forms of postings and their matches."""

from typing import Literal

from pydantic import Field, field_validator

from app.accounts.schemas import institution_json
from app.core.schemas import Query, Schema
from app.core.time import isoformat
from app.orgs.schemas import Id, _known_specialty
from app.postings.models import Posting

Kind = Literal["demand", "supply"]
Service = Literal["remote_imaging", "remote_pathology", "mdt", "consultation", "training", "visiting_expert"]


class PostingIn(Schema):
    kind: Kind
    institution_id: Id
    service: Service
    specialty: str | None = Field(default=None, max_length=50)
    description: str = Field(default="", max_length=4000)
    capacity_per_month: int | None = Field(default=None, ge=0, le=100_000)

    @field_validator("specialty")
    @classmethod
    def _known(cls, v):
        return _known_specialty(v)


class PostingQuery(Query):
    kind: Kind | None = None
    service: Service | None = None
    specialty: str | None = Field(default=None, max_length=50)


def posting_json(p: Posting) -> dict:
    """Serialise a posting."""
    return {"id": p.id, "kind": p.kind, "institution": institution_json(p.institution), "service": p.service,
            "specialty": p.specialty, "description": p.description, "capacity_per_month": p.capacity_per_month,
            "state": p.state, "matched_org_id": p.matched_org_id,
            # the counterpart this side accepted: the match forms once that one accepts this posting too
            "accepted_other_id": p.accepted_other_id, "created_at": isoformat(p.created_at)}


def match_json(match) -> dict:
    """Serialise a ranked counterpart posting with its score and reasons."""
    return {"posting": posting_json(match.posting), "score": match.score, "reasons": match.reasons}
