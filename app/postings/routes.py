"""Postings API."""

from flask import Blueprint

from app.postings import models as _models  # noqa: F401

bp = Blueprint("postings", __name__, url_prefix="/api")
