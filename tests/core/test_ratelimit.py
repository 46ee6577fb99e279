"""The per-process rate limiter forgets keys that have gone quiet (connections and users come and go)."""

from app.core import ratelimit
from app.core.ratelimit import RateLimiter


def test_keys_without_recent_events_are_forgotten(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    limiter = RateLimiter(limit=2, window=1.0)
    for key in range(1000):  # a thousand users (or connections), each gone after one event
        assert limiter.allow(key)
    assert limiter.allow("steady")
    assert limiter.allow("steady")
    assert not limiter.allow("steady")
    now[0] += 1.5
    assert limiter.allow("steady")  # the window has passed; this event also sweeps the quiet keys
    assert set(limiter._events) == {"steady"}
    now[0] += 0.5
    assert not limiter.exceeded("steady")
    assert limiter.allow("steady")
    assert not limiter.allow("steady")  # the bound holds across the sweep
