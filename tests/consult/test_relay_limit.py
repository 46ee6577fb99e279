"""A client flooding `typing` or `viewer` events is cut off at SOCKET_RELAY_EVENTS_PER_SECOND.

Each of these events is relayed to everyone in the room (and, with several processes, through
Redis to the others): without a bound one buggy or hostile client sent thousands a second to
every member.
"""

import time

import pytest

from tests.consult.test_room import joined

LIMIT = 10
REFUSED = {"ok": False, "error": "too many typing and viewer events",
           "detail": f"at most {LIMIT} a second; this one was not relayed"}


@pytest.fixture
def app_overrides():
    return {"SOCKET_RELAY_EVENTS_PER_SECOND": LIMIT}


def _settle(receiver, name: str, count: int) -> list[dict]:
    """The events ``name`` the receiver has once ``count`` of them arrived and nothing more came."""
    receiver.wait_for(name, lambda d: len(receiver.of(name)) >= count)
    time.sleep(0.3)
    return receiver.of(name)


def test_a_burst_past_the_bound_is_not_relayed_and_the_bound_recovers(live, mdt, clients):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)

    acks = [consultant.call("typing", {"case_id": case_id, "typing": i % 2 == 0}) for i in range(LIMIT - 2)]
    acks += [consultant.call("viewer", {"case_id": case_id, "series_uid": "1.2.3", "index": i}) for i in range(2)]
    assert acks == [{"ok": True}] * LIMIT
    # Past the bound (typing and viewer together), in the same second: refused, and said so.
    burst = [consultant.call("typing", {"case_id": case_id, "typing": True}) for _ in range(20)]
    burst += [consultant.call("viewer", {"case_id": case_id, "series_uid": "1.2.3", "index": 9})]
    assert burst == [REFUSED] * 21
    assert len(_settle(owner, "typing", LIMIT - 2)) == LIMIT - 2
    assert [v["index"] for v in owner.of("viewer")] == [0, 1]
    # Another member's events are their own.
    assert owner.call("typing", {"case_id": case_id, "typing": True}) == {"ok": True}
    assert consultant.wait_for("typing")["user_id"] == ids["owner"]

    time.sleep(1.1)  # the window has passed: relayed again
    assert consultant.call("viewer", {"case_id": case_id, "series_uid": "1.2.3", "index": 5}) == {"ok": True}
    assert owner.wait_for("viewer", lambda v: v["index"] == 5)["user_id"] == ids["consultant"]


def test_a_steady_rate_under_the_bound_is_all_relayed(live, mdt, clients):
    case_id, _, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    sent = 2 * LIMIT  # over two seconds and more, never LIMIT within one
    for i in range(sent):
        assert consultant.call("viewer", {"case_id": case_id, "series_uid": "1.2.3", "index": i}) == {"ok": True}
        time.sleep(1.5 / LIMIT)
    assert [v["index"] for v in _settle(owner, "viewer", sent)] == list(range(sent))


def test_the_bound_is_per_user_across_connections(live, mdt, clients):
    """A second connection (a second tab, or a client opening many) does not get a budget of its own."""
    case_id, _, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    first, _ = joined(clients, live, tokens["consultant"], case_id)
    second, _ = joined(clients, live, tokens["consultant"], case_id)
    acks = [c.call("typing", {"case_id": case_id, "typing": True}) for _ in range(LIMIT) for c in (first, second)]
    assert acks.count({"ok": True}) == LIMIT
    assert acks.count(REFUSED) == LIMIT
    assert len(_settle(owner, "typing", LIMIT)) == LIMIT
