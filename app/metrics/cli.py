"""Command-line tasks of the metrics: ``flask --app run follow-ups`` and ``metrics-rebuild`` (both nightly)."""

import click
from flask import Flask

from app.extensions import db
from app.metrics.followup import ask_due_follow_ups
from app.metrics.rollup import rebuild_all


def init_app(app: Flask) -> None:
    """Register the metrics commands on the app's CLI."""

    @app.cli.command("follow-ups")
    def follow_ups_command():
        """Ask once, thirty days after closing, whether the advice was followed (run daily)."""
        count = ask_due_follow_ups()
        db.session.commit()
        click.echo(f"follow-ups asked: {count}")

    @app.cli.command("metrics-rebuild")
    def metrics_rebuild_command():
        """Rebuild every stored month of the metric rollup from the cases (run nightly).

        Heals what the journal of timeline entries cannot see: cases written without an entry, an
        entry committed more than two minutes after a later one, a doctor moved to another hospital.
        """
        months = rebuild_all()
        click.echo(f"rebuilt {months} stored month{'s' if months != 1 else ''} of the metric rollup")
