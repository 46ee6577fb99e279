"""Redis (the message queue between server processes) restarted under two ``python run.py``.

A private redis-server (the machine's own serves other suites). After the restart the room works
across processes again, and a client that rejoins with ``since`` gets exactly what it missed.
"""

import time

import pytest

from app.consult.presence import HEARTBEAT_SECONDS
from tests.support.live import RoomClient, client_id

pytestmark = pytest.mark.slow


def send(client: RoomClient, case_id: int, body: str, cid: str | None = None) -> dict | None:
    try:
        return client.call("message", {"case_id": case_id, "body": body, "client_id": cid or client_id()})
    except Exception:  # noqa: BLE001 - no ack: the sender will resend with the same client_id
        return None


def test_rooms_recover_after_redis_restart_and_clients_catch_up(private_redis, killable, make_case_in_progress,
                                                               token_for, tmp_path):
    case_id, ids = make_case_in_progress()
    env = {"SOCKETIO_MESSAGE_QUEUE": private_redis.url, "UPLOAD_FOLDER": str(tmp_path / "up")}
    one, two = killable(**env).start(), killable(**env).start()
    owner = RoomClient(one.url, token_for(ids["owner"])).connect()
    consultant = RoomClient(two.url, token_for(ids["consultant"])).connect()
    try:
        assert owner.call("join", {"case_id": case_id, "since": 0})["ok"]
        assert consultant.call("join", {"case_id": case_id, "since": 0})["online"] == sorted(ids[k] for k in
                                                                                          ("owner", "consultant"))
        for i in range(3):
            assert send(owner, case_id, f"before {i}")["ok"]
        consultant.wait_for("message", lambda d: d["seq"] == 3)
        last_seen = max(d["seq"] for d in consultant.of("message"))

        # Redis goes away (its rooms and presence with it) while the owner keeps writing.
        private_redis.stop()
        pending = [(client_id(), f"during {i}") for i in range(3)]
        unacked = [(cid, body) for cid, body in pending if not (send(owner, case_id, body, cid) or {}).get("ok")]
        private_redis.start()

        # The owner resends what was not acknowledged, with the same client ids.
        for cid, body in unacked:
            assert send(owner, case_id, body, cid)["ok"]
        # The consultant rejoins from its last seq; the owner does not rejoin: its process puts its
        # room entry back by itself (its heartbeat sees Redis came back empty).
        deadline = time.monotonic() + HEARTBEAT_SECONDS + 5
        while True:
            ack = consultant.call("join", {"case_id": case_id, "since": last_seen})
            if ack["online"] == sorted(ids[k] for k in ("owner", "consultant")):
                break
            assert time.monotonic() < deadline, ack["online"]
            time.sleep(0.5)
        caught_up = [m["body"] for m in ack["messages"]]
        assert caught_up == [body for _, body in pending]
        live = {d["seq"] for d in consultant.of("message")}
        assert [m["seq"] for m in ack["messages"]] == [4, 5, 6]

        # Live delivery across the processes works again (the queue listener reconnected).
        deadline = time.monotonic() + 20
        n = 0
        while not any(d["body"].startswith("after") for d in consultant.of("message")):
            assert time.monotonic() < deadline, "messages no longer cross processes after the restart"
            assert send(owner, case_id, f"after {n}")["ok"]
            n += 1
            time.sleep(0.5)
        got = [d["seq"] for d in consultant.of("message")]
        assert len(got) == len(set(got))  # no message delivered twice
        assert live <= set(got)
    finally:
        owner.abort()
        consultant.abort()
