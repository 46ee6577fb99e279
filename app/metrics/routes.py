"""Metrics API."""

from flask import Blueprint

from app.metrics import models as _models  # noqa: F401

bp = Blueprint("metrics", __name__, url_prefix="/api")
