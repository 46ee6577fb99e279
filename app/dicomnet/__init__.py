"""DICOM networking: a per-case called AE title and the C-STORE/C-ECHO listener that ingests into cases."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the dicom-node route and the DICOM commands."""
    from app.dicomnet import cli
    from app.dicomnet.routes import bp

    app.register_blueprint(bp)
    cli.init_app(app)
