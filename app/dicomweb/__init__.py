"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) per case, and share links that open it without an account."""

from flask import Flask

from app.imaging.render import ByteLRU


def init_app(app: Flask) -> None:
    """Register the link API and the two DICOMweb roots, and the per-process metadata cache."""
    from app.dicomweb import routes

    mb = 1024 * 1024
    app.extensions["dicomweb_metadata_cache"] = ByteLRU(int(app.config.get("DICOMWEB_METADATA_CACHE_MB", 64)) * mb)
    app.register_blueprint(routes.links_bp)
    app.register_blueprint(routes.cases_bp)
    app.register_blueprint(routes.link_bp)
