"""Presence lists carry versions: joins handled at the same moment send their lists in any order,
and the list of the highest version is the room as it is.

Both stores are tested: in memory (one process) and in the real Redis of this machine (several
processes). Joins only add members, so ordered by version the lists must only grow: a list with
a higher version that lacks someone a lower one had is a version read apart from its list.
"""

import threading
import time
import uuid

import pytest
import redis

from app.consult.presence import MemoryPresence, RedisPresence

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryPresence()
        return
    prefix = f"huizhen-test-{uuid.uuid4().hex[:10]}:"
    yield RedisPresence(REDIS_URL, prefix)
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)


def test_lists_ordered_by_version_only_grow_while_members_join_at_once(store):
    joiners = 16
    barrier = threading.Barrier(joiners)
    snapshots = []

    def join(user_id: int) -> None:
        barrier.wait(10)
        snapshots.append(store.join(7, f"sid-{user_id}", user_id))

    threads = [threading.Thread(target=join, args=(u,)) for u in range(1, joiners + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(snapshots) == joiners
    ordered = sorted(snapshots, key=lambda s: s.version)
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        assert set(earlier.online) <= set(later.online), (earlier, later)
        if earlier.version == later.version:  # two reads after the same change
            assert earlier.online == later.online
    assert ordered[-1].online == list(range(1, joiners + 1))
    assert store.snapshot(7) == ordered[-1]

    left = store.leave(7, "sid-3")
    assert left.version > ordered[-1].version
    assert 3 not in left.online
    assert store.snapshot(7) == left


def test_versions_keep_rising_after_a_restart(store):
    """A new store (a restarted server, Redis emptied) starts above any version it gave before."""
    before = store.join(8, "a", 1).version
    time.sleep(0.002)  # a restart takes longer than a millisecond
    fresh = MemoryPresence() if isinstance(store, MemoryPresence) else store
    if isinstance(store, RedisPresence):
        store.r.delete(store._k("version", 8))  # noqa: SLF001 - Redis restarted empty, as far as versions go
    assert fresh.join(8, "b", 2).version > before


def test_every_client_ends_on_the_full_room_when_members_join_at_once(live, mdt, clients):
    """Over real Socket.IO connections: the presence list of the highest version each client saw is everyone."""
    case_id, ids, tokens = mdt
    members = ("owner", "consultant", "radiology")
    everyone = sorted(ids[who] for who in members)
    for _ in range(4):
        people = {who: clients(live.url, tokens[who]).connect() for who in members}
        barrier = threading.Barrier(len(members))
        acks = {}

        def join(who: str, people=people, barrier=barrier, acks=acks) -> None:
            barrier.wait(10)
            acks[who] = people[who].call("join", {"case_id": case_id, "since": 0})

        threads = [threading.Thread(target=join, args=(who,)) for who in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for who, c in people.items():
            assert acks[who]["ok"] is True
            c.wait_for("presence", lambda d: d["online"] == everyone)
            seen = [(acks[who]["online_version"], acks[who]["online"]),
                    *[(d["version"], d["online"]) for d in c.of("presence")]]
            assert max(seen)[1] == everyone, seen
        for c in people.values():
            c.disconnect()


def test_the_presenter_of_the_highest_version_is_the_one_stored(store):
    """Presenter changes at the same moment: the highest version returned names who presents now."""
    takers = 12
    barrier = threading.Barrier(takers)
    versions: dict[int, int] = {}

    def take(user_id: int) -> None:
        barrier.wait(10)
        versions[user_id] = store.set_presenter(9, user_id)

    threads = [threading.Thread(target=take, args=(u,)) for u in range(1, takers + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(versions.values())) == takers
    last = max(versions, key=versions.get)
    assert store.presenter_state(9) == (last, versions[last])
    ended = store.set_presenter(9, None)
    assert ended > versions[last]
    assert store.presenter_state(9) == (None, ended)


def test_every_client_ends_on_the_stored_presenter_when_two_take_at_once(live, mdt, clients):
    """Over real Socket.IO connections: two members take the presenter role at the same moment, several times."""
    case_id, ids, tokens = mdt
    members = ("owner", "consultant", "radiology")
    people = {}
    for who in members:
        people[who] = clients(live.url, tokens[who]).connect()
        assert people[who].call("join", {"case_id": case_id, "since": 0})["ok"] is True
    for _ in range(4):
        barrier = threading.Barrier(2)
        acks = {}

        def take(who: str, barrier=barrier, acks=acks) -> None:
            barrier.wait(10)
            acks[who] = people[who].call("present", {"case_id": case_id, "action": "take"})

        threads = [threading.Thread(target=take, args=(who,)) for who in ("owner", "consultant")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(a["ok"] for a in acks.values()), acks
        newest = max(acks.values(), key=lambda a: a["presenter_version"])
        check = clients(live.url, tokens["radiology"]).connect()
        stored = check.call("join", {"case_id": case_id, "since": 0})
        assert (stored["presenter"], stored["presenter_version"]) == (newest["presenter"],
                                                                      newest["presenter_version"])
        for c in people.values():
            c.wait_for("presenter", lambda d, v=newest["presenter_version"]: d["version"] == v)
            seen = max((d["version"], d["user_id"]) for d in c.of("presenter"))
            assert seen == (newest["presenter_version"], newest["presenter"])
        check.disconnect()
