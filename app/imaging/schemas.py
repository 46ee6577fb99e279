"""Query models of the imaging API."""

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.core.schemas import Query, Schema


class InstanceQuery(Query):
    series_uid: str | None = Field(default=None, max_length=64)


class ThumbnailQuery(Query):
    size: int = Field(default=128, ge=16, le=512)


class RenderQuery(Query):
    """The rendered endpoint's query, for the OpenAPI document (imaging.service.parse_render_request reads it)."""

    frame: int = Field(default=1, ge=0)
    wc: float | None = None
    ww: float | None = Field(default=None, gt=0)
    size: int | None = Field(default=None, ge=16, le=4096)
    format: Literal["png", "jpeg", "jpg", "PNG", "JPEG", "JPG"] = "png"  # noqa: A003 - the query's name


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Uid = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]


class FilesCheckBody(Schema):
    """Files a client is about to upload: sha256 of each as it has it, and the DICOM SOP Instance UIDs it read."""

    sha256: list[Sha256] = Field(default_factory=list, max_length=1000)
    sop_instance_uids: list[Uid] = Field(default_factory=list, max_length=1000)
