"""Timestamps: always timezone-aware UTC in code, naive UTC in the database."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as naive UTC, the form every DateTime column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(value: datetime | None) -> str | None:
    """Serialise a stored naive-UTC timestamp as ISO 8601 with a Z suffix."""
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"
