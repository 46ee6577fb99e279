"""Scale-out: two server processes sharing rooms through the real Redis of this machine."""

import uuid

import pytest
import redis
import requests

from tests.support.live import ProcessServer, ProductionServer, client_id

REDIS_URL = "redis://127.0.0.1:6379/0"
pytestmark = pytest.mark.slow


@pytest.fixture(params=[ProcessServer, ProductionServer], ids=["run.py", "gunicorn"])
def two_servers(request, database_url, tmp_path):
    """Two servers on the real Redis: ``python run.py``, and the production server (gunicorn)."""
    server = request.param
    tag = uuid.uuid4().hex[:10]
    prefix = f"huizhen-test-{tag}:"
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "two-process-test", "UPLOAD_FOLDER": str(tmp_path / "up"),
           "SOCKETIO_MESSAGE_QUEUE": REDIS_URL, "SOCKETIO_CHANNEL": f"huizhen-test-{tag}",
           "REDIS_KEY_PREFIX": prefix}
    servers = [server(env, tmp_path), server(env, tmp_path)]
    try:
        for s in servers:
            s.wait()
        yield servers
    finally:
        for s in servers:
            s.stop()
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=prefix + "*"))
        if keys:
            r.delete(*keys)


def test_message_presence_viewer_and_removal_cross_processes(two_servers, mdt, clients):
    one, two = two_servers
    case_id, ids, tokens = mdt
    owner = clients(one.url, tokens["owner"]).connect()
    consultant = clients(two.url, tokens["consultant"]).connect()
    assert owner.call("join", {"case_id": case_id, "since": 0})["ok"]
    ack = consultant.call("join", {"case_id": case_id, "since": 0})
    assert ack["online"] == sorted([ids["owner"], ids["consultant"]])  # presence held in Redis
    owner.wait_for("presence", lambda d: set(d["online"]) == {ids["owner"], ids["consultant"]})

    # A message sent on process two reaches the client on process one, once, in order.
    for i in range(3):
        assert consultant.call("message", {"case_id": case_id, "body": f"跨进程 {i}", "client_id": client_id()})["ok"]
    owner.wait_for("message", lambda d: d["seq"] == 3)
    assert [m["body"] for m in owner.of("message")] == ["跨进程 0", "跨进程 1", "跨进程 2"]

    # The presenter on process one leads a viewer on process two; a late joiner there catches up.
    assert owner.call("present", {"case_id": case_id, "action": "take"})["ok"]
    owner.call("viewer", {"case_id": case_id, "series_uid": "2.25.9", "index": 17, "wc": -600, "ww": 1500})
    assert consultant.wait_for("viewer")["index"] == 17
    radiology = clients(two.url, tokens["radiology"]).connect()
    late = radiology.call("join", {"case_id": case_id, "since": 0})
    assert late["presenter"] == ids["owner"]
    assert late["viewer"]["index"] == 17
    assert len(late["messages"]) == 3

    # Removal through process one pulls the radiologist out of the room held by process two.
    r = requests.delete(f"{one.url}/api/cases/{case_id}/participants/{ids['radiology']}",
                        headers={"Authorization": f"Bearer {tokens['consultant']}"}, timeout=10)
    assert r.status_code == 204
    radiology.wait_for("removed")
    owner.wait_for("presence", lambda d: ids["radiology"] not in d["online"] and len(d["online"]) == 2)
    owner.call("message", {"case_id": case_id, "body": "移除之后", "client_id": client_id()})
    consultant.wait_for("message", lambda d: d["body"] == "移除之后")
    assert "移除之后" not in [m["body"] for m in radiology.of("message")]

    # An abrupt loss of the owner's connection on process one is seen on process two.
    owner.sio.eio.ws.sock.shutdown(2)
    consultant.wait_for("presence", lambda d: d["online"] == [ids["consultant"]], timeout=20)


def test_production_server_refuses_to_start_without_secret_key(database_url, tmp_path):
    server = ProductionServer({"DATABASE_URL": database_url, "SECRET_KEY": ""}, tmp_path)
    try:
        assert server.proc.wait(30) != 0
    finally:
        server.stop()
    log = (tmp_path / f"server-{server.port}.log").read_text()
    assert "HUIZHEN_ENV=production requires SECRET_KEY" in log
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/login", timeout=2)
