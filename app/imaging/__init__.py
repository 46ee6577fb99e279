"""DICOM and attachments: ingest, de-identification, the image index and rendering."""

from flask import Flask

from app.imaging import logs
from app.imaging.render import ByteLRU

logs.install()  # before any upload is read: pydicom's messages never quote a value


def init_app(app: Flask) -> None:
    """Create the per-process caches of stored instances and rendered frames."""
    mb = 1024 * 1024
    app.extensions["instance_cache"] = ByteLRU(int(app.config["INSTANCE_CACHE_MB"]) * mb)
    app.extensions["render_cache"] = ByteLRU(int(app.config["RENDER_CACHE_MB"]) * mb)
