"""Who is in each case room, and the shared viewer state, across server processes.

With one process (no message queue) this lives in memory. With Redis as the Socket.IO message
queue it lives in Redis, so every process sees every connection: each entry names the process
that holds the connection, and a process that dies stops refreshing its heartbeat, so its
connections drop out of presence by themselves.
"""

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple, Protocol

from flask import current_app

from app.core.errors import Conflict

HEARTBEAT_SECONDS = 10
PROCESS_TTL = 3 * HEARTBEAT_SECONDS
# set_presenter's ``expected`` when the change does not depend on who presents now.
ANYONE = object()


class Snapshot(NamedTuple):
    """Who is in a room, and the version of that list.

    Every join and leave raises the room's version with the change itself, and a snapshot reads
    both together, so a later state always has a higher version. The server handles joins on
    several threads (and processes), so their ``presence`` events can arrive out of order: a
    client keeps the list of the highest version it has seen.
    """

    online: list[int]
    version: int


def next_version(previous: int) -> int:
    """The version after ``previous``: at least the time in ms, so versions rise across restarts too."""
    return max(previous + 1, time.time_ns() // 1_000_000)


class Presence(Protocol):
    def join(self, case_id: int, sid: str, user_id: int) -> Snapshot: ...
    def leave(self, case_id: int, sid: str) -> Snapshot: ...
    def snapshot(self, case_id: int) -> Snapshot: ...
    def online(self, case_id: int) -> list[int]: ...
    def sids_of(self, case_id: int, user_id: int) -> list[str]: ...
    def set_viewer(self, case_id: int, state: dict | None) -> None: ...
    def viewer(self, case_id: int) -> dict | None: ...
    def set_presenter(self, case_id: int, user_id: int | None, expected=ANYONE) -> int | None: ...
    def presenter(self, case_id: int) -> int | None: ...
    def presenter_state(self, case_id: int) -> tuple[int | None, int]: ...
    def end_if_absent(self, case_id: int, user_id: int) -> int | None: ...


class MemoryPresence:
    """Presence for a single process."""

    def __init__(self):
        self._rooms: dict[int, dict[str, int]] = {}
        self._versions: dict[int, int] = {}
        self._viewer: dict[int, dict] = {}
        self._presenter: dict[int, int] = {}
        self._presenter_versions: dict[int, int] = {}
        self._lock = threading.Lock()

    def join(self, case_id, sid, user_id):
        with self._lock:
            self._rooms.setdefault(case_id, {})[sid] = user_id
            return self._changed(case_id)

    def leave(self, case_id, sid):
        with self._lock:
            self._rooms.get(case_id, {}).pop(sid, None)
            return self._changed(case_id)

    def _changed(self, case_id) -> Snapshot:
        self._versions[case_id] = next_version(self._versions.get(case_id, 0))
        return self._snapshot(case_id)

    def _snapshot(self, case_id) -> Snapshot:
        return Snapshot(sorted(set(self._rooms.get(case_id, {}).values())), self._versions.get(case_id, 0))

    def snapshot(self, case_id):
        with self._lock:
            return self._snapshot(case_id)

    def online(self, case_id):
        return self.snapshot(case_id).online

    def sids_of(self, case_id, user_id):
        with self._lock:
            return [s for s, u in self._rooms.get(case_id, {}).items() if u == user_id]

    def set_viewer(self, case_id, state):
        with self._lock:
            if state is None:
                self._viewer.pop(case_id, None)
            else:
                self._viewer[case_id] = state

    def viewer(self, case_id):
        with self._lock:
            return self._viewer.get(case_id)

    def set_presenter(self, case_id, user_id, expected=ANYONE):
        with self._lock:
            if expected is not ANYONE and self._presenter.get(case_id) != expected:
                return None
            if user_id is None:
                self._presenter.pop(case_id, None)
            else:
                self._presenter[case_id] = user_id
            version = self._presenter_versions[case_id] = next_version(self._presenter_versions.get(case_id, 0))
            return version

    def presenter(self, case_id):
        return self.presenter_state(case_id)[0]

    def presenter_state(self, case_id):
        with self._lock:
            return self._presenter.get(case_id), self._presenter_versions.get(case_id, 0)

    def end_if_absent(self, case_id, user_id):
        with self._lock:
            if self._presenter.get(case_id) != user_id or user_id in self._rooms.get(case_id, {}).values():
                return None
            del self._presenter[case_id]
            if (self._viewer.get(case_id) or {}).get("user_id") == user_id:
                del self._viewer[case_id]
            version = self._presenter_versions[case_id] = next_version(self._presenter_versions.get(case_id, 0))
            return version


# The raise of a version (KEYS[2]) that ends the scripts below: one more, or Redis's clock in ms if later.
_RAISE = """
local version = redis.call('INCR', KEYS[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if version < now then
  redis.call('SET', KEYS[2], now)
  version = now
end
return version
"""

# A change and the raise of its version in one step (see Snapshot, next_version): a room's entry
# set or deleted (hset, hdel), or the presenter set for a day or deleted (set, del). The presenter's
# change can be made only if it is still ARGV[4] ('' for nobody; '*' for whoever): else -1, and
# nothing changes. The time is Redis's, one clock for every server process.
_CHANGE = """
local op = ARGV[1]
if ARGV[4] ~= '*' and (redis.call('GET', KEYS[1]) or '') ~= ARGV[4] then return -1 end
if op == 'hset' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif op == 'hdel' then redis.call('HDEL', KEYS[1], ARGV[2])
elseif op == 'set' then redis.call('SET', KEYS[1], ARGV[3], 'EX', 86400)
else redis.call('DEL', KEYS[1]) end
""" + _RAISE

# The presenter's role ended if they (ARGV[1]) still hold it and no connection of theirs is in the
# room on a live process (its heartbeat key, ARGV[2] .. process, exists): else -1, and nothing
# changes. The kept view goes too if it is theirs. One step, so a join or a take on another
# process is either seen or comes after.
_END_ABSENT = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
local entries = redis.call('HGETALL', KEYS[3])
for i = 2, #entries, 2 do
  local sep = string.find(entries[i], '|', 1, true)
  if sep and string.sub(entries[i], 1, sep - 1) == ARGV[1]
     and redis.call('EXISTS', ARGV[2] .. string.sub(entries[i], sep + 1)) == 1 then
    return -1
  end
end
redis.call('DEL', KEYS[1])
local viewer = redis.call('GET', KEYS[4])
if viewer then
  local ok, state = pcall(cjson.decode, viewer)
  if ok and type(state) == 'table' and tostring(state['user_id']) == ARGV[1] then redis.call('DEL', KEYS[4]) end
end
""" + _RAISE


class RedisPresence:
    """Presence shared by every process through Redis."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.r = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self.process = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # This process's own room entries, to put back if Redis restarts and loses them.
        self._local: dict[tuple[int, str], int] = {}
        self._local_lock = threading.Lock()
        self._change = self.r.register_script(_CHANGE)
        self._end_absent = self.r.register_script(_END_ABSENT)
        self._beat()
        threading.Thread(target=self._heartbeat, daemon=True, name="presence-heartbeat").start()

    def _k(self, *parts) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def _beat(self) -> None:
        if self.r.set(self._k("proc", self.process), "1", ex=PROCESS_TTL, get=True) is None:
            # Our key was gone: a fresh start, or Redis restarted empty. Put our rooms back.
            with self._local_lock:
                entries = list(self._local.items())
            for (case_id, sid), user_id in entries:
                self._set(case_id, sid, f"{user_id}|{self.process}")

    def _set(self, case_id, sid, value: str | None) -> None:
        """Set (or, value None, delete) a room's entry and raise the room's version."""
        self._versioned(self._k("room", case_id), self._k("version", case_id),
                        "hset" if value is not None else "hdel", sid, value)

    def _versioned(self, key: str, version_key: str, op: str, field: str, value, expected: str = "*") -> int | None:
        version = int(self._change(keys=[key, version_key], args=[op, field, "" if value is None else value, expected]))
        return None if version < 0 else version

    def _heartbeat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            try:
                self._beat()
            except Exception:  # noqa: BLE001, S112 - Redis briefly away: try again next beat
                continue

    def join(self, case_id, sid, user_id):
        with self._local_lock:
            self._local[(case_id, sid)] = user_id
        self._beat()  # after a Redis restart, before the next heartbeat, this process counts as alive
        self._set(case_id, sid, f"{user_id}|{self.process}")
        return self.snapshot(case_id)

    def leave(self, case_id, sid):
        with self._local_lock:
            self._local.pop((case_id, sid), None)
        self._set(case_id, sid, None)
        return self.snapshot(case_id)

    def snapshot(self, case_id):
        # The entries and the version read together (one transaction): a consistent pair. If a dead
        # process's entries were among them, their removal raised the version: read again.
        for _ in range(3):
            pipe = self.r.pipeline(transaction=True)
            pipe.hgetall(self._k("room", case_id))
            pipe.get(self._k("version", case_id))
            entries, version = pipe.execute()
            live = self._live(case_id, entries)
            if len(live) == len(entries):
                break
        return Snapshot(sorted(set(live.values())), int(version or 0))

    def _entries(self, case_id) -> dict[str, int]:
        return self._live(case_id, self.r.hgetall(self._k("room", case_id)))

    def _live(self, case_id, entries: dict[str, str]) -> dict[str, int]:
        """The entries of processes still alive; those of a dead process are deleted (raising the version)."""
        processes = {v.split("|")[1] for v in entries.values()}
        alive = {p for p in processes if self.r.exists(self._k("proc", p))}
        live, dead = {}, []
        for sid, value in entries.items():
            user, process = value.split("|")
            (live.__setitem__(sid, int(user)) if process in alive else dead.append(sid))
        for sid in dead:  # connections of a process that died: a change like a leave
            self._set(case_id, sid, None)
        return live

    def online(self, case_id):
        return sorted(set(self._entries(case_id).values()))

    def sids_of(self, case_id, user_id):
        return [s for s, u in self._entries(case_id).items() if u == user_id]

    def set_viewer(self, case_id, state):
        if state is None:
            self.r.delete(self._k("viewer", case_id))
        else:
            self.r.set(self._k("viewer", case_id), json.dumps(state), ex=24 * 3600)

    def viewer(self, case_id):
        raw = self.r.get(self._k("viewer", case_id))
        return json.loads(raw) if raw else None

    def set_presenter(self, case_id, user_id, expected=ANYONE):
        return self._versioned(self._k("presenter", case_id), self._k("presenter-version", case_id),
                               "del" if user_id is None else "set", "", user_id,
                               "*" if expected is ANYONE else "" if expected is None else str(expected))

    def presenter(self, case_id):
        raw = self.r.get(self._k("presenter", case_id))
        return int(raw) if raw else None

    def presenter_state(self, case_id):
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self._k("presenter", case_id))
        pipe.get(self._k("presenter-version", case_id))
        raw, version = pipe.execute()
        return (int(raw) if raw else None), int(version or 0)

    def end_if_absent(self, case_id, user_id):
        keys = [self._k("presenter", case_id), self._k("presenter-version", case_id), self._k("room", case_id),
                self._k("viewer", case_id)]
        version = int(self._end_absent(keys=keys, args=[user_id, self._k("proc", "")]))
        return None if version < 0 else version


def build_presence(config) -> Presence:
    """Choose the presence store: Redis when Redis is the message queue, memory otherwise."""
    queue = config.get("SOCKETIO_MESSAGE_QUEUE") or ""
    if queue.startswith(("redis://", "rediss://", "unix://")):
        return RedisPresence(queue, config.get("REDIS_KEY_PREFIX", "huizhen:"))
    return MemoryPresence()


# ---- the room's rules over the store: who presents, what the followers see ------------------

def store() -> Presence:
    """The presence store of the current app."""
    return current_app.extensions["presence"]


# The views of one case are kept and relayed one at a time (per process; a client's connection lives
# in one process), so the order followers see is the order the presenter's views were kept in.
_VIEW_LOCKS = [threading.Lock() for _ in range(64)]


def _view_lock(case_id: int) -> threading.Lock:
    return _VIEW_LOCKS[case_id % len(_VIEW_LOCKS)]


PRESENT_TRIES = 5  # decisions made again when another process changed the presenter meanwhile


def present(*, case_id: int, user_id: int, action: str, target: int | None = None) -> tuple[int | None, int]:
    """Take, release or hand over (to ``target``, who must be in the room) the presenter role.

    Return the new presenter and the version of that change. Changes handled on several threads
    or processes may be broadcast out of order; clients keep the presenter of the highest version.
    """
    presence = store()
    # Under the case's view lock: a view handled meanwhile is kept as the old presenter's or not at all.
    with _view_lock(case_id):
        # The change is made only if the presenter is still the one it was decided on: another
        # process may change it in between (the lock is this process's). Then decide again.
        for _ in range(PRESENT_TRIES):
            current = presence.presenter(case_id)
            if action == "take":
                new = user_id
            elif current != user_id:
                raise Conflict("you are not presenting" if action == "release"
                               else "only the presenter can hand over")
            elif action == "release":
                new = None
            elif target not in presence.online(case_id):
                raise Conflict("hand over to someone in the room", {"online": presence.online(case_id)})
            else:
                new = target
            version = presence.set_presenter(case_id, new, expected=current)
            if version is not None:
                break
        else:
            raise Conflict("the presenter changed meanwhile; try again")
        if new != current:  # the kept view is always the presenter's: the new one shares theirs at once
            presence.set_viewer(case_id, None)
    if new is not None and new != current:
        # The new presenter may have left meanwhile (their connection closed, or they were pulled
        # out on losing access): that leave found the role not yet theirs and ended nothing. Either
        # it sees the role now or this check sees the leave.
        ended = end_absent_presenter(case_id, presence.online(case_id))
        if ended is not None:
            return None, ended
    return new, version


def end_absent_presenter(case_id: int, online: list[int]) -> int | None:
    """End the presenter role of someone no longer in the room; return the version of that change.

    Run after every leave (:func:`depart`) and join: the presenter may be the one who left, or one
    whose server process died and ran no leave (its connections drop out of the room when another
    process reads it). ``online`` is the room just read; the store checks again in the same step as
    it ends the role, so a presenter who joined again or took it meanwhile, on any process, keeps
    it, and their kept view goes with the role, not a view a new presenter kept.
    """
    presence = store()
    presenter = presence.presenter(case_id)
    if presenter is None or presenter in online:
        return None
    with _view_lock(case_id):
        return presence.end_if_absent(case_id, presenter)


def presenter_and_view(case_id: int) -> tuple[int | None, int, dict | None]:
    """Who presents, the version of that, and the view kept from them for a late joiner.

    A view kept from anyone else is left out: one stored by another process just before a
    presenter change there, or the last one of a presenter who has since gone.
    """
    presence = store()
    presenter, version = presence.presenter_state(case_id)
    view = presence.viewer(case_id)
    return presenter, version, view if view is not None and view.get("user_id") == presenter else None


def supersedes(view: dict, kept: dict | None) -> bool:
    """Whether ``view`` may replace the ``kept`` one: anything but an older view from the same page."""
    same_page = (kept is not None and view.get("source") is not None
                 and (view["user_id"], view["source"]) == (kept.get("user_id"), kept.get("source")))
    return not same_page or view.get("seq") is None or kept.get("seq") is None or view["seq"] > kept["seq"]


def share_view(*, case_id: int, user_id: int, view: dict, relay: Callable[[dict], None]) -> None:
    """Relay ``user_id``'s view to the room; the presenter's is also kept for late joiners.

    A presenter's view older than the one kept from the same page (its handler ran late) is
    dropped: neither kept nor relayed.
    """
    presence = store()
    with _view_lock(case_id):  # the presenter read under the lock present() changes it under
        state = {**view, "case_id": case_id, "user_id": user_id, "presenter": presence.presenter(case_id) == user_id}
        if state["presenter"]:
            if supersedes(state, presence.viewer(case_id)):
                presence.set_viewer(case_id, state)
                relay(state)
            return
    relay(state)  # followers only follow the presenter: nothing to keep or order


def depart(*, case_id: int, sid: str) -> tuple[Snapshot, int | None]:
    """Take a connection out of a room; return who is left and, if the presenter role ended, its version.

    The role ends when its holder has no connection left in the room: the one leaving, or one
    whose server process died (see :func:`end_absent_presenter`).
    """
    left = store().leave(case_id, sid)
    return left, end_absent_presenter(case_id, left.online)
