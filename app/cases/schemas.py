"""Request bodies and JSON forms of cases."""

from typing import Literal

from pydantic import Field, field_validator

from app.accounts.schemas import user_json
from app.accounts.specialties import SPECIALTIES
from app.cases.models import Case
from app.core.schemas import Schema
from app.core.time import isoformat


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
        "created_at": isoformat(case.created_at),
        "updated_at": isoformat(case.updated_at),
    }
