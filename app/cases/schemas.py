"""Request bodies, query models and JSON forms of cases (the API and the pages share them)."""

from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import ConfigDict, Field, field_validator, model_validator

from app.accounts.models import User
from app.accounts.schemas import USER_SCHEMA, user_json
from app.accounts.specialties import SPECIALTIES
from app.cases import service
from app.cases.models import STATUSES, Case, DisciplineReport, Opinion, Participant
from app.cases.permissions import Action, Reach, allowed_actions, available_actions, role_of, roles_of
from app.cases.workflow import allowed_from
from app.core.openapi import AT, ID, TEXT, items_of, obj
from app.core.schemas import Query, QueryDate, Schema
from app.core.time import isoformat
from app.imaging import service as imaging
from app.orgs.schemas import Id, pool_ref, pool_refs


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

    _known_specialty = field_validator("specialty")(classmethod(lambda cls, v: known_specialty(v)))


def known_specialty(v: str | None) -> str | None:
    """Validate a specialty code (None passes): the request models' one check."""
    if v is not None and v not in SPECIALTIES:
        raise ValueError(f"unknown specialty {v!r}")
    return v


def case_json(case: Case) -> dict:
    """Serialise a case's summary fields."""
    return _case_fields(case, pool_ref(case.pool_id))


def _case_fields(case: Case, pool: dict | None) -> dict:
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
        "pool": pool,
        "created_at": isoformat(case.created_at),
        "updated_at": isoformat(case.updated_at),
    }


def summary_json(case: Case, *, viewer: User) -> dict:
    """A case as listed: its fields, the viewer's role and whether it is overdue."""
    return _summary(case, pool_ref(case.pool_id), role_of(viewer, case))


def summaries_json(cases: list[Case], *, viewer: User, reach: Reach | None = None) -> list[dict]:
    """summary_json of each case, in a fixed number of queries however many there are: the roles
    from one lookup of the viewer's participations and pools (``reach``, if not given), the pools'
    names in one query (the people come joined with the cases)."""
    roles = roles_of(viewer, cases, reach)
    pools, missing = {}, []
    for c in cases:
        joined = "pool" not in sa.inspect(c).unloaded  # the list query joins it; others are looked up
        if joined and (c.pool.id if c.pool else None) == c.pool_id:
            if c.pool:
                pools[c.pool_id] = {"id": c.pool.id, "name": c.pool.name}
        else:
            missing.append(c.pool_id)
    pools.update(pool_refs(missing))
    return [_summary(c, pools.get(c.pool_id), roles[c.id]) for c in cases]


def _summary(case: Case, pool: dict | None, role: str | None) -> dict:
    return {**_case_fields(case, pool), "due_at": isoformat(case.due_at), "overdue": service.is_overdue(case),
            "role": role}


def participant_json(p: Participant) -> dict:
    """Serialise a participant with their discipline."""
    return {"user": user_json(p.user), "user_id": p.user_id, "discipline": p.discipline,
            "added_at": isoformat(p.added_at)}


def opinion_json(o: Opinion | None) -> dict | None:
    """Serialise a signed opinion version (None stays None)."""
    if o is None:
        return None
    return {**o.content, "version": o.version, "state": o.state, "signed_by": user_json(o.author),
            "signed_at": isoformat(o.signed_at), "sha256": o.content_sha256,
            "amendment_reason": o.amendment_reason, "pdf": f"/api/cases/{o.case_id}/opinion.pdf"}


def draft_json(o: Opinion) -> dict:
    """Serialise the unsigned opinion draft."""
    return {**o.content, "version": o.version, "updated_at": isoformat(o.updated_at)}


def report_json(r: DisciplineReport) -> dict:
    """Serialise a discipline report."""
    return {"id": r.id, "discipline": r.discipline, "author": user_json(r.author), "body": r.body,
            "updated_at": isoformat(r.updated_at)}


def event_json(e) -> dict:
    """Serialise one timeline entry."""
    return {"at": isoformat(e.at), "actor": {"id": e.actor.id, "name": e.actor.name}, "action": e.action,
            "from": e.from_status, "to": e.to_status, "note": e.note, "data": e.data}


def case_detail_json(case: Case, *, viewer: User) -> dict:
    """Serialise a case with its studies, attachments, the people on it, its opinion and what the
    viewer may do: ``allowed_actions`` (their role's), ``transitions`` (the status's) and
    ``actions_now`` (both at once, what the pages offer)."""
    allowed = allowed_actions(viewer, case)
    # The opinion and the reports only to those who may read them (a triage coordinator may not).
    reads_opinion = Action.READ_OPINION in allowed
    signed = service.signed_versions(case) if reads_opinion else []
    return {
        **summary_json(case, viewer=viewer),
        "studies": imaging.case_studies(case),
        "attachments": [
            {"id": a.id, "filename": a.filename, "kind": a.kind, "size": a.size,
             "content_type": a.content_type, "url": f"/api/cases/{case.id}/attachments/{a.id}"}
            for a in imaging.case_attachments(case)
        ],
        "participants": [participant_json(p) for p in service.participants(case)],
        "reports": [report_json(r) for r in service.reports(case)] if reads_opinion else [],
        "opinion": opinion_json(signed[-1]) if signed else None,
        "rating": case.rating,
        "rating_comment": case.rating_comment,
        "outcome": case.outcome,
        "advice": case.advice,
        "allowed_actions": allowed,
        "transitions": allowed_from(case.status),
        "actions_now": sorted(available_actions(viewer, case)),
    }


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


_TEXTS = {"type": "array", "items": TEXT}
# JSON schemas of the answers, for the OpenAPI document (the fuzzer checks every answer against them).
CASE_SUMMARY_SCHEMA = obj({
    "id": ID, "title": TEXT, "clinical_question": TEXT, "summary": TEXT, "status": {"enum": list(STATUSES)},
    "urgency": {"enum": ["routine", "urgent", "emergency"]}, "specialty": _nullable(TEXT),
    "patient": obj({"age": _nullable({"type": "integer"}), "sex": _nullable(TEXT)}),
    "owner": USER_SCHEMA, "consultant": _nullable(USER_SCHEMA), "pool": _nullable(obj({"id": ID, "name": TEXT})),
    "created_at": AT, "updated_at": AT, "due_at": _nullable(AT), "overdue": {"type": "boolean"},
    "role": _nullable(TEXT)})
CASE_LIST_SCHEMA = obj({**items_of(CASE_SUMMARY_SCHEMA)["properties"], "total": {"type": "integer", "minimum": 0},
                        "total_capped": {"type": "boolean"}})
CASE_DETAIL_SCHEMA = obj({
    **CASE_SUMMARY_SCHEMA["properties"],
    "studies": {"type": "array", "items": {"type": "object"}},
    "attachments": {"type": "array", "items": obj({"id": ID, "filename": TEXT, "kind": TEXT,
                                                   "size": {"type": "integer"}, "content_type": TEXT, "url": TEXT})},
    "participants": {"type": "array", "items": obj({"user": USER_SCHEMA, "user_id": ID, "discipline": _nullable(TEXT),
                                                    "added_at": AT})},
    "reports": {"type": "array", "items": obj({"id": ID, "discipline": _nullable(TEXT), "author": USER_SCHEMA,
                                               "body": TEXT, "updated_at": AT})},
    "opinion": _nullable({"type": "object"}), "rating": _nullable({"type": "integer"}),
    "rating_comment": _nullable(TEXT), "outcome": _nullable(TEXT), "advice": _nullable(TEXT),
    "allowed_actions": _TEXTS, "transitions": _TEXTS, "actions_now": _TEXTS})


class CaseListQuery(Query):
    """Search and filters of the case list; all optional, AND-ed, over the cases the caller may see."""

    model_config = ConfigDict(populate_by_name=True)
    q: str | None = Field(default=None, max_length=200)
    specialty: str | None = Field(default=None, max_length=50)
    status: str | None = Field(default=None, max_length=20)
    modality: str | None = Field(default=None, max_length=16)
    urgency: Literal["routine", "urgent", "emergency"] | None = None
    from_: QueryDate | None = Field(default=None, alias="from")
    to: QueryDate | None = None
    waiting_for_me: bool = False
    limit: int | None = Field(default=None, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("modality")
    @classmethod
    def _upper(cls, v):
        return v.upper() if v else v


class InboxStatusQuery(Query):
    """The inbox page's filter and paging: an unknown status shows every case rather than an error
    page; ``page`` is the page of ``section`` to show (the other sections show their first)."""

    status: str | None = None
    section: str | None = Field(default=None, max_length=30)
    page: int = Field(default=1, ge=1, le=10_000)

    @field_validator("status")
    @classmethod
    def _known_status(cls, v):
        return v if v in STATUSES else None

    @field_validator("section")
    @classmethod
    def _known_section(cls, v):
        if v is not None and v not in service.INBOX_SECTIONS:
            raise ValueError(f"unknown section; one of: {', '.join(service.INBOX_SECTIONS)}")
        return v


class OpinionPdfQuery(Query):
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)


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
    outcome: Literal["referral_avoided", "referral_needed", "already_planned", "other"] | None = None
    advice: Literal["confirmed_plan", "new_advice", "not_useful"] | None = None


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
    differential: list[Annotated[str, Field(max_length=1000)]] | None = Field(default=None, max_length=20)
    recommendations: str | None = Field(default=None, max_length=20_000)
    follow_up: str | None = Field(default=None, max_length=4000)
    image_refs: list[ImageRef] | None = Field(default=None, max_length=100)
    contributions: list[Contribution] | None = Field(default=None, max_length=20)


class AmendmentIn(OpinionIn):
    reason: str = Field(min_length=1, max_length=4000)
