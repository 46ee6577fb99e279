"""Share links to a case (capability tokens) and the cached QIDO attributes of a series."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.core.time import utcnow
from app.extensions import db

SCOPES = ("read", "read_write")


class ShareLink(db.Model):
    """A revocable, expiring capability to read (or read and store into) one case's images."""

    __tablename__ = "share_links"
    __table_args__ = (sa.CheckConstraint("scope IN ('read', 'read_write')", name="scope"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    scope: so.Mapped[str] = so.mapped_column(sa.String(16))
    label: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    # Only the sha256 of the token is kept: the token itself is shown once, at creation.
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[datetime]
    revoked_at: so.Mapped[datetime | None]


class SeriesAttributes(db.Model):
    """Study- and series-level DICOM JSON attributes of a series, read once from a stored instance.

    The index keeps what the viewer needs; QIDO also answers dates and descriptions, which are
    taken from the de-identified file the first time a search needs them.
    """

    __tablename__ = "dicomweb_series_attrs"

    series_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"), primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    attrs: so.Mapped[dict] = so.mapped_column(sa.JSON)
