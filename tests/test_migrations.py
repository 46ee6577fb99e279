"""Migrations: one head, and upgrading an empty database yields exactly the models."""

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from config import TestingConfig
from tests.conftest import _with_search_path


def test_single_head(app):
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def _modelled(name, type_, _parent) -> bool:
    # SQLite's FTS5 search tables (and their shadow tables) exist only in the database: see app/core/fulltext.py.
    return not (type_ == "table" and name and "_fts" in name)


@pytest.fixture
def empty_database_url(tmp_path):
    base = TestingConfig.SQLALCHEMY_DATABASE_URI
    if base is None:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    schema = f"hz_mig_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(base, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_upgrade_from_empty_matches_models(empty_database_url, tmp_path):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=empty_database_url, INSTANCE_PATH=str(tmp_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _modelled})
            diff = compare_metadata(ctx, db.metadata)
        db.engine.dispose()
    assert diff == []
