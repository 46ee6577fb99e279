"""Query models of the pages."""

from pydantic import Field

from app.core.schemas import Query


class NextQuery(Query):
    """Where to go after logging in or switching language (checked by ``_safe_next``)."""

    next: str | None = None


class ViewerQuery(Query):
    series: str | None = Field(default=None, max_length=64)
