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


# ---- presenter changes decided on one process while another changes the presenter ----------------
# The view lock in presence.present/depart is per process. Each test makes another process's take
# land between this process's decision and its write (CutIn: right before the write reaches the
# store), which is the order that lost a take before the write was made conditional.

class CutIn:
    """This process's store; ``cut_in`` runs once, just before its next presenter write."""

    def __init__(self, store):
        self.store, self.cut_in = store, None

    def __getattr__(self, name):
        return getattr(self.store, name)

    def set_presenter(self, case_id, user_id, *args, **kwargs):
        if self.cut_in is not None:
            cut_in, self.cut_in = self.cut_in, None
            cut_in()
        return self.store.set_presenter(case_id, user_id, *args, **kwargs)

    def end_if_absent(self, case_id, user_id):
        if self.cut_in is not None:
            cut_in, self.cut_in = self.cut_in, None
            cut_in()
        return self.store.end_if_absent(case_id, user_id)


@pytest.fixture
def two_processes(store):
    """(this process's store, another process's store): two RedisPresence on one prefix, or one memory store."""
    if isinstance(store, MemoryPresence):
        return store, store
    return store, RedisPresence(REDIS_URL, store.prefix)


@pytest.fixture
def on_this_process(app, two_processes):
    mine, _ = two_processes
    cut = CutIn(mine)
    saved = app.extensions["presence"]
    app.extensions["presence"] = cut
    with app.app_context():
        yield cut
    app.extensions["presence"] = saved


def test_a_conditional_presenter_write_fails_once_someone_else_presents(two_processes):
    mine, other = two_processes
    assert mine.set_presenter(5, 1) is not None
    taken = other.set_presenter(5, 2, expected=1)
    assert taken is not None
    assert mine.set_presenter(5, None, expected=1) is None  # 1 no longer presents: nothing changes
    assert mine.presenter_state(5) == (2, taken)
    assert other.set_presenter(5, None, expected=2) > taken
    assert mine.set_presenter(5, 3, expected=None) is not None  # nobody presented: 3 may take


def test_the_presenter_leaving_does_not_undo_a_take_on_another_process(two_processes, on_this_process):
    from app.consult import presence

    mine, other = two_processes
    on_this_process.join(6, "sid-a", 1)
    mine.set_presenter(6, 1)
    taken = []
    on_this_process.cut_in = lambda: taken.append(other.set_presenter(6, 2))
    left, ended = presence.depart(case_id=6, sid="sid-a")
    assert len(taken) == 1  # the take did land in between
    assert taken[0] is not None
    assert ended is None  # 1's role had already ended: no "nobody presents" to broadcast
    assert mine.presenter_state(6) == (2, taken[0])
    assert 1 not in left.online


def test_a_release_raced_by_a_take_on_another_process_leaves_the_take(two_processes, on_this_process):
    from app.consult import presence
    from app.core.errors import Conflict

    mine, other = two_processes
    mine.set_presenter(7, 1)
    taken = []
    on_this_process.cut_in = lambda: taken.append(other.set_presenter(7, 2))
    with pytest.raises(Conflict, match="you are not presenting"):
        presence.present(case_id=7, user_id=1, action="release")
    assert mine.presenter_state(7) == (2, taken[0])

    # A take raced by another take: decided again, and the later take wins with a higher version.
    on_this_process.join(7, "sid-d", 4)  # a take comes from a connection in the room
    on_this_process.cut_in = lambda: taken.append(other.set_presenter(7, 3))
    new, version = presence.present(case_id=7, user_id=4, action="take")
    assert (new, version) == mine.presenter_state(7) == (4, version)
    assert version > taken[1]


def test_a_late_joiner_gets_only_the_presenters_kept_view(two_processes, on_this_process):
    from app.consult import presence

    mine, _ = two_processes
    mine.set_presenter(8, 1)
    mine.set_viewer(8, {"user_id": 1, "series_uid": "1.2.3", "index": 4})
    assert presence.presenter_and_view(8)[2] == {"user_id": 1, "series_uid": "1.2.3", "index": 4}
    mine.set_viewer(8, {"user_id": 2, "series_uid": "1.2.3", "index": 9})  # kept just before a change elsewhere
    presenter, _, view = presence.presenter_and_view(8)
    assert (presenter, view) == (1, None)


def test_a_dead_processs_connections_leave_with_a_new_version():
    """Entries left by a process that died (its heartbeat gone) drop out as a leave would: a higher version."""
    prefix = f"huizhen-test-{uuid.uuid4().hex[:10]}:"
    store = RedisPresence(REDIS_URL, prefix)
    try:
        store.join(4, "sid-1", 1)
        # What a process that died leaves behind: an entry naming it, and no heartbeat key.
        store.r.hset(store._k("room", 4), "sid-2", "2|4242-deadbeef")  # noqa: SLF001
        with_dead = int(store.r.get(store._k("version", 4)))  # noqa: SLF001
        after = store.snapshot(4)
        assert after.online == [1]
        assert after.version > with_dead
        assert store.snapshot(4) == after  # nothing more to drop: the same list, the same version
    finally:
        keys = list(store.r.scan_iter(match=prefix + "*"))
        if keys:
            store.r.delete(*keys)


@pytest.fixture
def redis_presence(app):
    """The app's presence in the real Redis (as with several server processes), on a prefix of its own."""
    store = RedisPresence(REDIS_URL, f"huizhen-test-{uuid.uuid4().hex[:10]}:")
    saved = app.extensions["presence"]
    app.extensions["presence"] = store
    yield store
    app.extensions["presence"] = saved
    keys = list(store.r.scan_iter(match=store.prefix + "*"))
    if keys:
        store.r.delete(*keys)


def test_a_presenter_whose_process_died_stops_presenting_when_the_room_is_next_read(redis_presence, live, mdt,
                                                                                   clients):
    """No leave ran for them: the next join (or leave) ends the role, tells the room and answers no presenter."""
    case_id, ids, tokens = mdt
    owner = clients(live.url, tokens["owner"]).connect()
    assert owner.call("join", {"case_id": case_id, "since": 0})["ok"]
    # What a process that died leaves behind: the radiologist in the room and presenting, with a view.
    redis_presence.r.hset(redis_presence._k("room", case_id), "sid-dead", f"{ids['radiology']}|4242-deadbeef")  # noqa: SLF001
    taken = redis_presence.set_presenter(case_id, ids["radiology"])
    redis_presence.set_viewer(case_id, {"user_id": ids["radiology"], "series_uid": "1.2.3", "index": 4})
    consultant = clients(live.url, tokens["consultant"]).connect()
    ack = consultant.call("join", {"case_id": case_id, "since": 0})
    assert ack["ok"] is True
    assert (ack["presenter"], ack["viewer"]) == (None, None)
    assert ack["presenter_version"] > taken
    assert ids["radiology"] not in ack["online"]
    ended = owner.wait_for("presenter", lambda d: d["user_id"] is None)
    assert ended["version"] == ack["presenter_version"]
    assert redis_presence.presenter_state(case_id) == (None, ack["presenter_version"])
    # Someone present keeps the role through others' joins and leaves.
    assert consultant.call("present", {"case_id": case_id, "action": "take"})["ok"]
    assert owner.call("leave", {"case_id": case_id})["ok"]
    assert owner.call("join", {"case_id": case_id, "since": 0})["presenter"] == ids["consultant"]


def test_an_absent_presenter_who_comes_back_meanwhile_keeps_the_role(two_processes, on_this_process):
    """The room read here lacks the presenter, who joins again on another process before the role
    is ended: the end checks the room in the same step, so they keep it."""
    from app.consult import presence

    mine, other = two_processes
    taken = other.set_presenter(9, 1)
    on_this_process.cut_in = lambda: other.join(9, "sid-back", 1)
    assert presence.end_absent_presenter(9, online=[]) is None
    assert mine.presenter_state(9) == (1, taken)
    other.leave(9, "sid-back")
    ended = presence.end_absent_presenter(9, online=[])
    assert ended is not None
    assert ended > taken
    assert mine.presenter_state(9) == (None, ended)


def test_ending_an_absent_presenter_keeps_another_users_view(two_processes, on_this_process):
    from app.consult import presence

    mine, other = two_processes
    mine.set_presenter(10, 1)
    mine.set_viewer(10, {"user_id": 2, "series_uid": "1.2.3", "index": 1})  # kept from someone else
    assert presence.end_absent_presenter(10, online=[]) is not None
    assert mine.viewer(10) == {"user_id": 2, "series_uid": "1.2.3", "index": 1}
    mine.set_presenter(10, 3)
    mine.set_viewer(10, {"user_id": 3, "series_uid": "1.2.3", "index": 2})
    assert presence.end_absent_presenter(10, online=[]) is not None
    assert mine.viewer(10) is None


def test_a_presenter_who_reloads_the_page_keeps_the_role(two_processes, on_this_process):
    """The old page's leave is handled here, the new page's join on another process just before the
    role would end: it stays theirs, with their view."""
    from app.consult import presence

    mine, other = two_processes
    on_this_process.join(11, "sid-old", 1)
    taken = mine.set_presenter(11, 1)
    mine.set_viewer(11, {"user_id": 1, "series_uid": "1.2.3", "index": 7})
    on_this_process.cut_in = lambda: other.join(11, "sid-new", 1)
    left, ended = presence.depart(case_id=11, sid="sid-old")
    assert 1 not in left.online  # read before the new page joined
    assert ended is None
    assert mine.presenter_state(11) == (1, taken)
    assert mine.viewer(11) == {"user_id": 1, "series_uid": "1.2.3", "index": 7}
