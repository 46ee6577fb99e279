"""A sliding-window counter of events per key (a user id), in this process's memory."""

import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (per process)."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._events: dict = defaultdict(deque)
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def _recent(self, key, now: float) -> deque:
        if now - self._swept > self.window:
            self._sweep(now)
        events = self._events[key]
        while events and now - events[0] > self.window:
            events.popleft()
        return events

    def _sweep(self, now: float) -> None:
        # Keys come and go (users, connections): once a window, forget those with no recent event,
        # so the counter holds only the keys active in the last two windows.
        self._swept = now
        for key in [k for k, events in self._events.items() if not events or now - events[-1] > self.window]:
            del self._events[key]

    def allow(self, key) -> bool:
        """Count an event and return True, or return False (not counted) when the key has had ``limit``."""
        now = time.monotonic()
        with self._lock:
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def exceeded(self, key) -> bool:
        """Whether the key has had ``limit`` events in the window (counts nothing)."""
        now = time.monotonic()
        with self._lock:
            events = self._recent(key, now)
            if not events:
                del self._events[key]  # keys come and go (user ids): keep only those with recent events
            return len(events) >= self.limit

    def note(self, key) -> None:
        """Count an event whatever the limit."""
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)
