"""The image index of a case: study → series → instance, plus photo and PDF attachments."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.core.time import utcnow
from app.extensions import db

ATTACHMENT_KINDS = ("image", "document")


class Study(db.Model):
    """A de-identified DICOM study within a case."""

    __tablename__ = "studies"
    __table_args__ = (sa.UniqueConstraint("case_id", "study_uid", name="uq_studies_case_uid"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    study_uid: so.Mapped[str] = so.mapped_column(sa.String(64))
    modality: so.Mapped[str] = so.mapped_column(sa.String(16), default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class Series(db.Model):
    """A de-identified series; its instances sort by slice position, then instance number."""

    __tablename__ = "series"
    __table_args__ = (sa.UniqueConstraint("case_id", "series_uid", name="uq_series_case_uid"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    study_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: so.Mapped[str] = so.mapped_column(sa.String(64))
    modality: so.Mapped[str] = so.mapped_column(sa.String(16), default="")
    body_part: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    series_number: so.Mapped[int | None]
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    study: so.Mapped[Study] = so.relationship(lazy="joined")


class Instance(db.Model):
    """One stored, de-identified DICOM object (SOP instance) and what is needed to show it."""

    __tablename__ = "instances"
    __table_args__ = (sa.UniqueConstraint("case_id", "sop_instance_uid", name="uq_instances_case_sop"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    series_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: so.Mapped[str] = so.mapped_column(sa.String(64))
    sop_class_uid: so.Mapped[str] = so.mapped_column(sa.String(64))
    transfer_syntax_uid: so.Mapped[str] = so.mapped_column(sa.String(64))
    instance_number: so.Mapped[int | None]
    slice_position: so.Mapped[float | None]
    frames: so.Mapped[int] = so.mapped_column(default=1)
    rows: so.Mapped[int | None]
    columns: so.Mapped[int | None]
    pixel_spacing: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    photometric: so.Mapped[str | None] = so.mapped_column(sa.String(16))
    # Why the instance cannot be shown as an image (no pixel data, no decoder), if it cannot.
    render_error: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    burned_in_annotation: so.Mapped[bool] = so.mapped_column(default=False)
    object_key: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    size: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    # sha256 of the file as uploaded (before de-identification): what a resuming browser can hash.
    source_sha256: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    uploaded_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    series: so.Mapped[Series] = so.relationship(lazy="joined")


class UidMap(db.Model):
    """Original → de-identified UID, per case; kept server-side only, never served."""

    __tablename__ = "uid_map"
    __table_args__ = (sa.UniqueConstraint("case_id", "original_uid", name="uq_uid_map_case_original"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    original_uid: so.Mapped[str] = so.mapped_column(sa.String(64))
    new_uid: so.Mapped[str] = so.mapped_column(sa.String(64))


class Attachment(db.Model):
    """A photo (JPEG/PNG, metadata stripped) or a PDF attached to a case."""

    __tablename__ = "attachments"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('image', 'document')", name="kind"),
        sa.UniqueConstraint("case_id", "sha256", name="uq_attachments_case_sha256"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    filename: so.Mapped[str] = so.mapped_column(sa.String(255))
    kind: so.Mapped[str] = so.mapped_column(sa.String(16))
    content_type: so.Mapped[str] = so.mapped_column(sa.String(100))
    object_key: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    size: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    sha256: so.Mapped[str] = so.mapped_column(sa.String(64))
    # sha256 of the file as uploaded (before its metadata was stripped).
    source_sha256: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    uploaded_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
