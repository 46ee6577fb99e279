"""Request bodies and JSON forms of cases."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from app.accounts.schemas import user_json
from app.accounts.specialties import SPECIALTIES
from app.cases.models import Case
from app.core.schemas import Schema
from app.core.time import isoformat
from app.orgs.schemas import Id, pool_ref


class PatientIn(Schema):
    age: int | None = Field(default=None, ge=0, le=150)
    sex: Literal["female", "male", "other", "unknown", "F", "M", "O", "U"] | None = None

    @field_validator("sex")
    @classmethod
    def _long_form(cls, v):
        return {"F": "female", "M": "male", "O": "other", "U": "unknown"}.get(v, v)


class CaseCreate(Schema):
    title: str = Field(min_length=1, max_length=200)
    clinical_question: str = Field(min_length=1, max_length=10_000)
    summary: str = Field(default="", max_length=20_000)
    patient: PatientIn = Field(default_factory=PatientIn)
    urgency: Literal["routine", "urgent", "emergency"] = "routine"
    specialty: str | None = Field(default=None, max_length=50)

    @field_validator("specialty")
    @classmethod
    def _known_specialty(cls, v):
        if v is not None and v not in SPECIALTIES:
            raise ValueError(f"unknown specialty {v!r}")
        return v


def case_json(case: Case) -> dict:
    """Serialise a case's summary fields."""
    return {
        "id": case.id,
        "title": case.title,
        "clinical_question": case.clinical_question,
        "summary": case.summary,
        "status": case.status,
        "urgency": case.urgency,
        "specialty": case.specialty,
        "patient": {"age": case.patient_age, "sex": case.patient_sex},
        "owner": user_json(case.owner),
        "consultant": user_json(case.consultant) if case.consultant else None,
        "pool": pool_ref(case.pool_id),
        "created_at": isoformat(case.created_at),
        "updated_at": isoformat(case.updated_at),
    }


class ShareIn(Schema):
    """Share with a named specialist, or with an org (a consortium's rules or a pool's triage queue)."""

    specialist_id: int | None = None
    org_id: Id | None = None
    message: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.specialist_id is None) == (self.org_id is None):
            raise ValueError("give exactly one of specialist_id or org_id")
        return self


class ReasonIn(Schema):
    reason: str = Field(default="", max_length=4000)


class QuestionIn(Schema):
    question: str = Field(min_length=1, max_length=4000)


class AnswerIn(Schema):
    answer: str = Field(min_length=1, max_length=10_000)


class CloseIn(Schema):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=4000)


class ParticipantIn(Schema):
    user_id: int
    discipline: str = Field(min_length=1, max_length=50)

    @field_validator("discipline")
    @classmethod
    def _known_discipline(cls, v):
        if v not in SPECIALTIES:
            raise ValueError(f"unknown discipline {v!r}")
        return v


class ReportIn(Schema):
    body: str = Field(min_length=1, max_length=20_000)
    discipline: str | None = Field(default=None, max_length=50)


class ImageRef(Schema):
    study_uid: str | None = Field(default=None, max_length=64)
    series_uid: str | None = Field(default=None, max_length=64)
    sop_instance_uid: str | None = Field(default=None, max_length=64)
    frame: int | None = Field(default=None, ge=1)
    note: str = Field(default="", max_length=500)


class Contribution(Schema):
    discipline: str = Field(max_length=50)
    user_id: int | None = None
    summary: str = Field(max_length=10_000)


class OpinionIn(Schema):
    """The structured opinion; every field optional so drafts can be saved part-written."""

    diagnosis: str | None = Field(default=None, max_length=4000)
    differential: list[str] | None = Field(default=None, max_length=20)
    recommendations: str | None = Field(default=None, max_length=20_000)
    follow_up: str | None = Field(default=None, max_length=4000)
    image_refs: list[ImageRef] | None = Field(default=None, max_length=100)
    contributions: list[Contribution] | None = Field(default=None, max_length=20)


class AmendmentIn(OpinionIn):
    reason: str = Field(min_length=1, max_length=4000)
