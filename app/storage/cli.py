"""``flask --app run storage-gc``: delete objects left behind by failed uploads."""

from datetime import timedelta

import click
from flask import Flask

from app.storage import get_store
from app.storage.gc import abort_unfinished_uploads, collect_garbage


def init_app(app: Flask) -> None:
    """Register the storage commands."""

    @app.cli.command("storage-gc")
    @click.option("--older-than-minutes", default=60, show_default=True,
                  help="leave younger objects alone (uploads may still be in progress)")
    def storage_gc(older_than_minutes: int):
        """Delete stored objects that no database row refers to and abort abandoned uploads."""
        grace = timedelta(minutes=older_than_minutes)
        aborted = abort_unfinished_uploads(get_store(), older_than=grace)
        removed = collect_garbage(get_store(), older_than=grace)
        click.echo(f"removed {len(removed)} unreferenced object(s), aborted {len(aborted)} unfinished upload(s)")
