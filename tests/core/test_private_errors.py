"""Database errors are logged and raised without the values of the statement that failed."""

import pytest
import sqlalchemy as sa

from app.extensions import db


def test_a_database_errors_text_does_not_carry_the_statements_values(app):
    with app.app_context(), pytest.raises(sa.exc.SQLAlchemyError) as caught:
        db.session.execute(sa.text("SELECT name FROM no_such_table WHERE name = :name"), {"name": "ZHANG^SAN"})
    assert "no_such_table" in str(caught.value)  # the statement is named, for whoever reads the log
    assert "ZHANG^SAN" not in str(caught.value)
