"""Imaging fixtures: a county doctor owning a draft case, and their API client."""

import pytest


@pytest.fixture
def owner(make_user):
    return make_user(specialty="general_practice", level="county")


@pytest.fixture
def case_id(make_case, owner):
    return make_case(owner)


@pytest.fixture
def api(api_as, owner):
    return api_as(owner)
