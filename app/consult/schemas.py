"""Request models of the room (socket payloads and HTTP bodies/queries) and its JSON forms."""

from typing import Annotated, Literal

from pydantic import Field, FiniteFloat, StrictInt, field_validator

from app.cases.schemas import ImageRef
from app.consult.models import ANNOTATION_KINDS, Annotation, Message
from app.core.openapi import AT, ID, TEXT, obj
from app.core.schemas import Schema
from app.core.time import isoformat

MAX_BODY = 4000
# A client_id is echoed to every member's page, so it is held to a plain token.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
Uid = Annotated[str, Field(max_length=64)]
# An annotation's point in image pixels (column, row). DICOM images are at most 65,535 pixels a side;
# the margin keeps a drag that ended off the image. Unbounded, a finite 1e308 measured an infinite line.
POINT_LIMIT = 100_000
Coordinate = Annotated[FiniteFloat, Field(ge=-POINT_LIMIT, le=POINT_LIMIT)]


class CaseRef(Schema):
    """The case a socket event is about; strict, so neither 1.5 nor "1" nor true is read as an id."""

    case_id: StrictInt = Field(ge=1)


class JoinIn(Schema):
    case_id: int
    since: int = Field(default=0, ge=0)

    @field_validator("since", mode="before")
    @classmethod
    def _none_is_zero(cls, v):
        return 0 if v is None else v


class MessageIn(Schema):
    case_id: int
    body: str = Field(min_length=1, max_length=MAX_BODY)
    client_id: str = Field(min_length=1, max_length=64, pattern=CLIENT_ID_PATTERN)
    image_ref: ImageRef | None = None

    @field_validator("body")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("message is empty")
        return v


class MessagesQuery(Schema):
    since: int = Field(default=0, ge=0)


class TypingIn(Schema):
    case_id: int
    typing: bool = True


class ViewerIn(Schema):
    """The shared view; only these fields are relayed or kept for late joiners."""

    case_id: int
    study_uid: Uid | None = None
    series_uid: Uid | None = None
    sop_instance_uid: Uid | None = None
    index: int | None = Field(default=None, ge=0, le=100_000)
    frame: int | None = Field(default=None, ge=1, le=100_000)
    wc: FiniteFloat | None = None
    ww: FiniteFloat | None = None
    zoom: FiniteFloat | None = Field(default=None, gt=0, le=100)
    pan: tuple[FiniteFloat, FiniteFloat] | None = None
    rotation: FiniteFloat | None = None
    invert: bool | None = None
    # A page numbers the views it sends (seq) under a random id of its own (source). The server runs
    # a client's events on several threads, so a view could otherwise overtake the newer one after it.
    source: str | None = Field(default=None, pattern=r"^[0-9a-f]{8,64}$")
    seq: int | None = Field(default=None, ge=0, le=2**53 - 1)

    def state(self) -> dict:
        """The fields the sender set, without the case id."""
        return self.model_dump(exclude_unset=True, exclude={"case_id"})


class PresentIn(Schema):
    case_id: int
    action: Literal["take", "release", "handover"] = "take"
    user_id: int | None = None


class AnnotationIn(Schema):
    case_id: int
    sop_instance_uid: str = Field(min_length=1, max_length=64)
    frame: int = Field(default=1, ge=1)
    kind: str
    points: list[tuple[Coordinate, Coordinate]] = Field(min_length=1, max_length=2)
    text: str = Field(default="", max_length=500)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in ANNOTATION_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ANNOTATION_KINDS)}")
        return v


class AnnotationsQuery(Schema):
    sop_instance_uid: str | None = Field(default=None, max_length=64)


class AnnotationDeleteIn(Schema):
    case_id: int
    id: int


AUTHOR_SCHEMA = obj({"id": ID, "name": TEXT})
MESSAGE_SCHEMA = obj({"case_id": ID, "seq": ID, "client_id": {"type": ["string", "null"]}, "author": AUTHOR_SCHEMA,
                      "body": TEXT, "image_ref": {"type": ["object", "null"]}, "at": AT})
MESSAGES_PAGE_SCHEMA = obj({"items": {"type": "array", "items": MESSAGE_SCHEMA}, "more": {"type": "boolean"}})
ANNOTATION_SCHEMA = obj({
    "id": ID, "case_id": ID, "sop_instance_uid": TEXT, "frame": ID, "kind": {"enum": list(ANNOTATION_KINDS)},
    "points": {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2,
                                          "maxItems": 2}},
    "text": {"type": ["string", "null"]}, "length_mm": {"type": ["number", "null"]}, "author": AUTHOR_SCHEMA,
    "at": AT})


def message_json(m: Message) -> dict:
    """The ``message`` event payload (also the HTTP form)."""
    return {"case_id": m.case_id, "seq": m.seq, "client_id": m.client_id,
            "author": {"id": m.author.id, "name": m.author.name}, "body": m.body,
            "image_ref": m.image_ref, "at": isoformat(m.created_at)}


def annotation_json(a: Annotation) -> dict:
    """The ``annotation`` event payload (also the HTTP form)."""
    return {"id": a.id, "case_id": a.case_id, "sop_instance_uid": a.sop_instance_uid, "frame": a.frame,
            "kind": a.kind, "points": a.points, "text": a.text, "length_mm": a.length_mm,
            "author": {"id": a.author.id, "name": a.author.name}, "at": isoformat(a.created_at)}
