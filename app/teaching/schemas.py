"""Request bodies, query models and JSON forms of teaching cases."""

from typing import Literal

from pydantic import Field, field_validator

from app.cases.schemas import known_specialty
from app.core.schemas import Query, Schema
from app.core.time import isoformat
from app.orgs.schemas import Id
from app.teaching.models import TeachingCase


class Tags(Schema):
    specialty: str | None = Field(default=None, max_length=50)
    keywords: list[str] = Field(default_factory=list, max_length=20)
    difficulty: Literal["basic", "intermediate", "advanced"] = "intermediate"

    _known_specialty = field_validator("specialty")(classmethod(lambda cls, v: known_specialty(v)))

    @field_validator("keywords")
    @classmethod
    def _short_keywords(cls, v):
        words = [w.strip() for w in v if w and w.strip()]
        if any(len(w) > 50 for w in words):
            raise ValueError("a keyword is at most 50 characters")
        return words


class ProposeIn(Schema):
    org_id: Id
    note: str = Field(default="", max_length=10_000)
    tags: Tags = Field(default_factory=Tags)


class ConsentIn(Schema):
    agree: bool
    show_hospital: bool = False


class TeachingQuery(Query):
    q: str | None = Field(default=None, max_length=200)
    specialty: str | None = Field(default=None, max_length=50)
    org_id: Id | None = None
    difficulty: Literal["basic", "intermediate", "advanced"] | None = None


def teaching_json(t: TeachingCase) -> dict:
    """Serialise a teaching case: the copy, its tags and note; never chat, audit or people's names."""
    from app.extensions import db
    from app.orgs.models import Org

    org = db.session.get(Org, t.org_id)
    return {
        "id": t.id, "case_id": t.case_id, "state": t.state,
        "org": {"id": org.id, "name": org.name, "kind": org.kind} if org else None,
        "note": t.note, "tags": {"specialty": t.specialty, "keywords": t.keywords or [], "difficulty": t.difficulty},
        **t.content, "hospital": t.hospital_name,
        "images": f"/teaching/{t.id}/viewer" if t.state == "published" else None,
        "created_at": isoformat(t.created_at), "decided_at": isoformat(t.decided_at),
    }
