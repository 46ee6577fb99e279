"""DICOM and attachments: ingest, de-identification, the image index and rendering."""

from flask import Flask

from app.imaging.render import ByteLRU


def init_app(app: Flask) -> None:
    """Create the per-process caches of stored instances and rendered frames."""
    mb = 1024 * 1024
    app.extensions["instance_cache"] = ByteLRU(int(app.config.get("INSTANCE_CACHE_MB", 256)) * mb)
    app.extensions["render_cache"] = ByteLRU(int(app.config.get("RENDER_CACHE_MB", 128)) * mb)
