"""Query models of the imaging API."""

from pydantic import Field

from app.core.schemas import Query


class InstanceQuery(Query):
    series_uid: str | None = Field(default=None, max_length=64)


class ThumbnailQuery(Query):
    size: int = Field(default=128, ge=16, le=512)
