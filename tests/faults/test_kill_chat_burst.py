"""``kill -9`` during a chat burst: every acknowledged message survives, resending adds no duplicates."""

import threading
import time

import pytest
import requests

from tests.support.live import RoomClient, client_id

pytestmark = pytest.mark.slow
PER_SENDER = 30


def test_acknowledged_messages_survive_kill_and_resends_are_not_duplicated(killable, make_case_in_progress,
                                                                            token_for):
    case_id, ids = make_case_in_progress()
    tokens = {who: token_for(ids[who]) for who in ("owner", "consultant")}
    server = killable()
    live = server.start()
    sent = {who: [(client_id(), f"{who} 第{i}条 <b>{i}</b>") for i in range(PER_SENDER)] for who in tokens}
    acked: dict[str, int] = {}  # client_id -> seq, for the messages the server acknowledged
    lock = threading.Lock()

    def burst(who: str, client: RoomClient) -> None:
        for cid, body in sent[who]:
            try:
                ack = client.call("message", {"case_id": case_id, "body": body, "client_id": cid})
            except Exception:  # noqa: BLE001 - the server died: this message may or may not be stored
                return
            assert ack["ok"], ack
            with lock:
                acked[cid] = ack["seq"]

    clients = []
    for who, token in tokens.items():
        c = RoomClient(live.url, token).connect()
        assert c.call("join", {"case_id": case_id, "since": 0})["ok"]
        clients.append((who, c))
    threads = [threading.Thread(target=burst, args=pair, daemon=True) for pair in clients]  # never joined
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < PER_SENDER:  # half the burst is acknowledged: kill -9 in the middle of it
        assert time.monotonic() < deadline, "the burst did not get going"
        time.sleep(0.01)
    server.kill()
    # (The senders' calls in flight time out in their threads; an ack arriving after this copy
    # would only make the check below weaker, never wrong.)
    with lock:
        acknowledged = dict(acked)
    assert PER_SENDER <= len(acknowledged) < 2 * PER_SENDER

    # Restarted: every acknowledged message is there, with the seq its ack gave.
    live = server.start()
    auth = {"Authorization": f"Bearer {tokens['owner']}"}
    items = requests.get(f"{live.url}/api/cases/{case_id}/messages?since=0", headers=auth, timeout=10).json()["items"]
    stored = {m["client_id"]: m["seq"] for m in items}
    assert {cid: stored.get(cid) for cid in acknowledged} == acknowledged
    assert [m["seq"] for m in items] == list(range(1, len(items) + 1))

    # The clients reconnect and resend everything (acknowledged or not) with the same client ids.
    for who, token in tokens.items():
        c = RoomClient(live.url, token).connect()
        try:
            assert c.call("join", {"case_id": case_id, "since": 0})["ok"]
            for cid, body in sent[who]:
                ack = c.call("message", {"case_id": case_id, "body": body, "client_id": cid})
                assert ack["ok"], ack
                assert ack["duplicate"] == (cid in stored)
                if cid in acknowledged:
                    assert ack["seq"] == acknowledged[cid]
        finally:
            c.abort()
    items = requests.get(f"{live.url}/api/cases/{case_id}/messages?since=0", headers=auth, timeout=10).json()["items"]
    assert len(items) == 2 * PER_SENDER
    assert sorted(m["client_id"] for m in items) == sorted(cid for who in sent for cid, _ in sent[who])
    assert [m["seq"] for m in items] == list(range(1, 2 * PER_SENDER + 1))
    # And an HTTP resend of one of them is recognised too.
    cid, body = sent["owner"][0]
    r = requests.post(f"{live.url}/api/cases/{case_id}/messages", headers=auth, timeout=10,
                      json={"body": body, "client_id": cid})
    assert r.status_code == 200, r.text
