"""The OHIF Viewer (prebuilt ``@ohif/app`` from npm) served per case and per share link."""

import click
from flask import Flask


def init_app(app: Flask) -> None:
    """Register the viewer's routes and the ``ohif-fetch`` command."""
    from app.ohif import assets, routes

    app.register_blueprint(routes.bp)

    @app.cli.command("ohif-fetch")
    def ohif_fetch() -> None:
        """Fetch the pinned OHIF Viewer build with npm (once) into OHIF_CACHE."""
        click.echo(assets.fetch(app.config["OHIF_CACHE"]))
