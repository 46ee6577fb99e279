"""A case's DICOM node (its called AE title) and the calling AE titles an institution allows."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.core.time import utcnow
from app.extensions import db


class DicomNode(db.Model):
    """A called AE title that routes a C-STORE into one case, issued to one person (``created_by``).

    Knowing the title is the capability, and it is worth what its holder's access is: each holder of
    upload rights gets a title of their own, and a sender is admitted, and each instance stored, only
    while that holder may still upload to the case (a specialist who declined sends nothing more).
    """

    __tablename__ = "dicom_nodes"
    __table_args__ = (sa.UniqueConstraint("case_id", "created_by_id", name="uq_dicom_nodes_case_holder"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    case_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    ae_title: so.Mapped[str] = so.mapped_column(sa.String(16), unique=True)
    created_by_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class DicomPeer(db.Model):
    """A calling AE title an institution allows; an institution with none accepts any sender."""

    __tablename__ = "dicom_peers"
    __table_args__ = (sa.UniqueConstraint("institution_id", "ae_title", name="uq_dicom_peers_institution_ae"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    institution_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("institutions.id", ondelete="CASCADE"),
                                                      index=True)
    ae_title: so.Mapped[str] = so.mapped_column(sa.String(16))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
