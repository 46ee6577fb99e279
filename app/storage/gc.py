"""Removing objects no database row refers to (left by uploads that failed during an outage)."""

from datetime import timedelta

import sqlalchemy as sa

from app.core.time import utcnow
from app.extensions import db
from app.storage.base import CASES_PREFIX, ObjectStore

# Tables whose object_key column refers to stored objects.
_REFERENCING = ("instances", "attachments")


def referenced_keys() -> set[str]:
    """Return every object key a database row refers to."""
    keys: set[str] = set()
    for name in _REFERENCING:
        table = db.metadata.tables[name]
        keys.update(db.session.scalars(sa.select(table.c.object_key)))
    return keys


def collect_garbage(store: ObjectStore, *, older_than: timedelta = timedelta(hours=1),
                    prefix: str = CASES_PREFIX) -> list[str]:
    """Delete unreferenced objects older than the grace period (so uploads in progress are safe)."""
    cutoff = utcnow() - older_than
    live = referenced_keys()
    removed = []
    for key, modified in store.keys(prefix):
        if key not in live and modified <= cutoff:
            store.delete(key)
            removed.append(key)
    return removed


def abort_unfinished_uploads(store: ObjectStore, *, older_than: timedelta = timedelta(hours=1),
                             prefix: str = CASES_PREFIX) -> list[str]:
    """Abort uploads begun before the grace period and never finished (a crash mid multipart upload)."""
    return store.abort_unfinished(prefix, started_before=utcnow() - older_than)
