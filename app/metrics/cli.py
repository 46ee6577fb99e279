"""Command-line tasks of the metrics: ``flask --app run follow-ups``."""

import click
from flask import Flask

from app.extensions import db
from app.metrics.followup import ask_due_follow_ups


def init_app(app: Flask) -> None:
    """Register the metrics commands on the app's CLI."""

    @app.cli.command("follow-ups")
    def follow_ups_command():
        """Ask once, thirty days after closing, whether the advice was followed (run daily)."""
        count = ask_due_follow_ups()
        db.session.commit()
        click.echo(f"follow-ups asked: {count}")
