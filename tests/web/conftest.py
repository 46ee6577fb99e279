"""Page tests: log the Flask test client in through the login form."""

import re

import pytest

from tests.conftest import PASSWORD


def page_csrf(client, path="/login") -> str:
    """Return the CSRF token a page (the login form by default) carries."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


@pytest.fixture
def login(client, app):
    """Log the test client in as a user id and return the page CSRF token."""
    from app.accounts.models import User
    from app.extensions import db

    def log_in(user_id: int) -> str:
        with app.app_context():
            email = db.session.get(User, user_id).email
        r = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": page_csrf(client)})
        assert r.status_code == 302
        return page_csrf(client, "/")

    return log_in
