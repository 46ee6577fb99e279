"""Request parsing with pydantic models; a bad body is a 400 naming each bad field.

Numbers from outside are finite and fit the database: every float a Schema takes rejects
NaN/Infinity, every int lies in the range of the database's INTEGER columns (PostgreSQL's is
32-bit; a larger id would raise DataError there and OverflowError on SQLite past 2**63), and a
JSON body with a ``NaN``/``Infinity`` literal (not JSON, but Python's parser takes it) is a 400.
A JSON true/false is taken only by a field that admits a bool (pydantic's lax mode reads it as 1 or 0),
and a body's yes/no field takes only a JSON true/false (lax mode reads "no", "off", 0 as false); a query
string's flags (``?waiting_for_me=1``) stay lax, as a query has no booleans of its own.
"""

import json
import math
import types
from datetime import date
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

import pydantic
from flask import request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

from app.core.errors import BadRequest

M = TypeVar("M", bound=pydantic.BaseModel)

# The range of an INTEGER column on every database we run on (PostgreSQL's is the narrowest).
DB_INT_MIN = -(2**31)
DB_INT_MAX = 2**31 - 1


def _check_numbers(value, path: str = "") -> None:
    """Raise ValueError if value holds an int outside the database range, a non-finite float or a NUL."""
    if isinstance(value, bool):
        return
    if isinstance(value, str):
        # PostgreSQL text cannot hold NUL (psycopg raises, a 500); no field of ours needs one.
        if "\x00" in value:
            raise ValueError(f"text{path} must not contain NUL characters")
        return
    if isinstance(value, int):
        if not DB_INT_MIN <= value <= DB_INT_MAX:
            raise ValueError(f"number{path} is outside the supported range {DB_INT_MIN}..{DB_INT_MAX}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"number{path} must be finite")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            _check_numbers(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, f"{path}.{key}")


def _takes_bool(annotation) -> bool:
    """Tell whether a field's type admits a JSON true/false anywhere in it (bool, Any, a union with bool...)."""
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(arg) for arg in get_args(annotation))


def _only_bool(annotation) -> bool:
    """Tell whether a field is a yes/no: bool, or bool or None."""
    if annotation is bool:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        args = set(get_args(annotation))
        return bool in args and args <= {bool, type(None)}
    return False


def _holds_bool(value) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list | tuple) and any(isinstance(item, bool) for item in value)


class Schema(pydantic.BaseModel):
    """Base for request bodies: unknown fields are ignored, strings are stripped, numbers bounded."""

    model_config = pydantic.ConfigDict(extra="ignore", str_strip_whitespace=True, allow_inf_nan=False)
    lax_booleans: ClassVar[bool] = False  # Query: "1"/"true" in a query string are its booleans

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _booleans_are_booleans(cls, v, info: pydantic.ValidationInfo):
        annotation = cls.model_fields[info.field_name].annotation
        # pydantic's lax mode reads true as 1: {"specialist_id": true} would share a case with user 1.
        if _holds_bool(v) and not _takes_bool(annotation):
            raise ValueError("true/false where a number or text is expected")
        # ...and "no" or 0 as false: {"active": "yes"} is a client's mistake, not a decision.
        if not cls.lax_booleans and v is not None and not isinstance(v, bool) and _only_bool(annotation):
            raise ValueError("must be true or false")
        return v

    @pydantic.field_validator("*", mode="after")
    @classmethod
    def _bounded_numbers(cls, v):
        # Nested Schemas check their own fields; this covers ints, floats and their containers.
        if not isinstance(v, pydantic.BaseModel):
            _check_numbers(v)
        return v


# A date in a query (from=, to=): periods are computed a year or a day around it, which the
# calendar's ends (0001-01-01, 9999-12-31) cannot hold (an OverflowError, a 500).
QueryDate = Annotated[date, pydantic.Field(ge=date(1900, 1, 1), le=date(2999, 12, 31))]


class Query(Schema):
    """Base for query strings: a parameter given empty (``?status=``) counts as not given."""

    lax_booleans: ClassVar[bool] = True

    @pydantic.model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, data):
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data


class IdConverter(IntegerConverter):
    """``<int:...>`` in URLs: only ids the database can hold match (others are a 404, not a 500)."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002 - werkzeug's names
                 max: int | None = DB_INT_MAX, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that ``NaN``/``Infinity``/``-Infinity`` literals are refused on input."""

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_constant", _no_constant)
        return json.loads(s, **kwargs)


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against the model, or raise BadRequest with per-field errors."""
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("request body must be a JSON object", {"content_type": request.content_type})
    return validate(model, data)


def parse_optional_body(model: type[M]) -> M:
    """Validate the JSON body against the model if one was sent, else return the model's defaults.

    Whether there is a body is read from the body itself, not Content-Length: a chunked request
    (Transfer-Encoding, no length) has one too, and ignoring it would act on what it did not say.
    """
    if not request.get_data(cache=True).strip():
        return model()
    return parse_body(model)


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
