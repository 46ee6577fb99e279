"""Object storage behind one interface: the local filesystem or any S3 endpoint (MinIO)."""

from flask import Flask, current_app

from app.storage.base import (
    CASES_PREFIX,
    ObjectStore,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    case_key,
    case_prefix,
)


def build_store(config) -> ObjectStore:
    """Create the object store the config asks for."""
    backend = (config.get("STORAGE_BACKEND") or "local").lower()
    if backend == "local":
        from app.storage.local import LocalStore

        return LocalStore(config["UPLOAD_FOLDER"])
    if backend == "s3":
        from app.storage.s3 import S3Store

        return S3Store(
            endpoint=config["S3_ENDPOINT"],
            access_key=config["S3_ACCESS_KEY"],
            secret_key=config["S3_SECRET_KEY"],
            bucket=config["S3_BUCKET"],
            region=config.get("S3_REGION"),
        )
    raise RuntimeError(f"unknown STORAGE_BACKEND {backend!r} (use 'local' or 's3')")


def init_app(app: Flask) -> None:
    """Attach the configured object store to the app (it connects lazily, on first use)."""
    app.extensions["object_store"] = build_store(app.config)


def get_store() -> ObjectStore:
    """Return the current app's object store."""
    return current_app.extensions["object_store"]


__all__ = ["CASES_PREFIX", "ObjectStore", "StorageFull", "StorageUnavailable", "StoredObject", "build_store",
           "case_key", "case_prefix", "get_store", "init_app"]
