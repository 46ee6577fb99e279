"""Request parsing with pydantic models; a bad body is a 400 naming each bad field."""

from typing import TypeVar

import pydantic
from flask import request

from app.core.errors import BadRequest

M = TypeVar("M", bound=pydantic.BaseModel)


class Schema(pydantic.BaseModel):
    """Base for request bodies: unknown fields are ignored, strings are stripped."""

    model_config = pydantic.ConfigDict(extra="ignore", str_strip_whitespace=True)


class Query(Schema):
    """Base for query strings: a parameter given empty (``?status=``) counts as not given."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data):
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against the model, or raise BadRequest with per-field errors."""
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("request body must be a JSON object", {"content_type": request.content_type})
    return validate(model, data)


def parse_query(model: type[M]) -> M:
    """Validate the query string against the model."""
    return validate(model, request.args.to_dict())


def validate(model: type[M], data) -> M:
    """Validate data against the model, or raise BadRequest listing each bad field."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        detail = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        fields = ", ".join(d["field"] for d in detail)
        raise BadRequest(f"invalid field: {fields}", detail) from None
