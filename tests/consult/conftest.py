"""Fixtures for the realtime tests: a live server and a case with an MDT in its room."""

import pytest

from tests.support.live import RoomClient, ThreadServer


@pytest.fixture
def live(app):
    server = ThreadServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def mdt(make_case_in_progress, token_for):
    """A case in progress with owner, consultant and a radiology participant; tokens for each."""
    case_id, ids = make_case_in_progress(
        users={"owner": {"name": "李春梅"}, "consultant": {"specialty": "gynecology", "name": "王静怡"},
               "radiology": {"specialty": "radiology", "name": "陈志远"}, "outsider": {"name": "孙浩"}},
        participants={"radiology": "radiology"})
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
