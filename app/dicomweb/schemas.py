"""Request bodies and JSON forms of share links."""

from typing import Literal

from pydantic import Field

from app.core.schemas import Schema
from app.core.time import isoformat
from app.dicomweb.links import link_state
from app.dicomweb.models import ShareLink


class LinkIn(Schema):
    scope: Literal["read", "read_write"] = "read"
    # At least 6 minutes: a link that expires before its receiver can paste it is a mistake.
    expires_in_hours: float = Field(default=168, ge=0.1, le=24 * 365, allow_inf_nan=False)
    label: str = Field(default="", max_length=200)


def link_json(link: ShareLink) -> dict:
    """Serialise a link without its token (which is never stored)."""
    return {"id": link.id, "scope": link.scope, "label": link.label, "state": link_state(link),
            "created_by": link.created_by_id, "created_at": isoformat(link.created_at),
            "expires_at": isoformat(link.expires_at), "revoked_at": isoformat(link.revoked_at)}
