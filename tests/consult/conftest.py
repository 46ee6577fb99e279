"""Fixtures for the realtime tests: a live server and a case with an MDT in its room."""

import pytest

from tests.support.live import RoomClient, ThreadServer


@pytest.fixture
def live(app):
    server = ThreadServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def mdt(make_user, api_as, make_case, token_for):
    """A case in progress with owner, consultant and a radiology participant; tokens for each."""
    ids = {"owner": make_user(name="李春梅"), "consultant": make_user(specialty="gynecology", name="王静怡"),
           "radiology": make_user(specialty="radiology", name="陈志远"), "outsider": make_user(name="孙浩")}
    case_id = make_case(ids["owner"])
    owner, consultant = api_as(ids["owner"]), api_as(ids["consultant"])
    owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": ids["consultant"]})
    consultant.post(f"/api/cases/{case_id}/accept")
    consultant.post(f"/api/cases/{case_id}/participants", json={"user_id": ids["radiology"], "discipline": "radiology"})
    tokens = {k: token_for(v) for k, v in ids.items()}
    return case_id, ids, tokens


@pytest.fixture
def clients():
    """Connected clients are disconnected at the end of the test."""
    made = []

    def make(url, token, **kwargs):
        c = RoomClient(url, token, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.abort()
