"""Request bodies, query models and JSON forms of teaching cases."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.cases.permissions import Action
from app.cases.schemas import known_specialty
from app.cases.workflow import STATUS_GATES
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


class ReviewTeachingIn(Schema):
    """Propose a peer review's disagreement: the note is the review's, so only the org and tags."""

    org_id: Id
    tags: Tags = Field(default_factory=Tags)

    @model_validator(mode="before")
    @classmethod
    def _difficulty_in_tags(cls, data):
        # Unknown fields are ignored elsewhere; a difficulty put beside the tags would be lost silently.
        if isinstance(data, dict) and "difficulty" in data:
            raise ValueError('difficulty goes inside "tags": {"tags": {"difficulty": "advanced"}}')
        return data


class ConsentIn(Schema):
    # Strict: publishing a patient's case (and naming their hospital) takes a JSON true, not "yes" or 1.
    agree: bool
    show_hospital: bool = False


class TeachingQuery(Query):
    q: str | None = Field(default=None, max_length=200)
    specialty: str | None = Field(default=None, max_length=50)
    org_id: Id | None = None
    difficulty: Literal["basic", "intermediate", "advanced"] | None = None


COPY_FIELDS = ("title", "question", "summary", "patient", "studies", "reports", "opinion")


def teaching_json(t: TeachingCase, *, copy: bool = True) -> dict:
    """Serialise a teaching case: the copy, its tags and note; never chat, audit or people's names.
    Without ``copy`` (app.teaching.permissions.reads_copy says no) the copy's fields are null."""
    from app.extensions import db
    from app.orgs.models import Org

    org = db.session.get(Org, t.org_id)
    content = t.content if copy else dict.fromkeys(COPY_FIELDS)
    return {
        "id": t.id, "case_id": t.case_id, "state": t.state,
        "org": {"id": org.id, "name": org.name, "kind": org.kind} if org else None,
        "note": t.note, "tags": {"specialty": t.specialty, "keywords": t.keywords or [], "difficulty": t.difficulty},
        # From a blinded peer review: its score only (the note above is the review's); never who reviewed.
        "peer_review": {"score": t.disagreement} if t.disagreement else None,
        **content, "copy_withheld": not copy, "hospital": t.hospital_name,
        "images": f"/teaching/{t.id}/viewer" if t.state == "published" else None,
        "created_at": isoformat(t.created_at), "decided_at": isoformat(t.decided_at),
    }


def review_teaching_json(review, case, capacity: str, made: list[TeachingCase]) -> dict:
    """Serialise a disagreement the caller may turn into a teaching case: the review's score and note,
    the case's question, never the reviewer's or the author's name."""
    return {
        "id": review.id, "case_id": case.id, "score": review.score, "teaching_note": review.teaching_note,
        "created_at": isoformat(review.created_at), "as": capacity,
        "clinical_question": case.clinical_question, "specialty": case.specialty,
        "proposable": case.status in STATUS_GATES[Action.PROPOSE_TEACHING],
        "teaching": [{"id": t.id, "org_id": t.org_id, "state": t.state} for t in made],
    }
