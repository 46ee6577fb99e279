"""Who may hold a socket: pages of the app's own origin only, and only while the credential lives."""

import json
import re
import time

import pytest
import requests
import socketio
import websocket

from tests.conftest import PASSWORD
from tests.support.live import client_id

UA = "huizhen-test-browser"


def _login(live, app, user_id) -> str:
    """Log in through the login page like a browser; return the session cookie header."""
    from app.accounts.models import User
    from app.extensions import db

    with app.app_context():
        email = db.session.get(User, user_id).email
    s = requests.Session()
    s.headers["User-Agent"] = UA
    html = s.get(live.url + "/login", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    r = s.post(live.url + "/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
               allow_redirects=False, timeout=10)
    assert r.status_code == 302
    return "; ".join(f"{k}={v}" for k, v in s.cookies.items())


def _ws(live, origin, cookie):
    """Open the raw Engine.IO WebSocket as a browser page on ``origin`` would, with the cookie."""
    url = live.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, origin=origin, cookie=cookie, header=[f"User-Agent: {UA}"], timeout=10)
    assert ws.recv().startswith("0{")  # the Engine.IO open packet
    ws.send("40/consult,")
    return ws


def _join(ws, case_id):
    ws.send(f'42/consult,1["join",{{"case_id":{case_id}}}]')
    while True:
        packet = ws.recv()
        if packet == "2":  # an Engine.IO ping
            ws.send("3")
        elif packet.startswith("43/consult,1"):
            return json.loads(packet[len("43/consult,1"):])[0]


def test_a_page_on_another_origin_cannot_open_the_doctors_socket(live, mdt, app, api_as):
    case_id, ids, _ = mdt
    api_as(ids["owner"]).post(f"/api/cases/{case_id}/messages", json={"body": "病史保密", "client_id": client_id()})
    cookie = _login(live, app, ids["owner"])
    for evil in ("http://evil.example", "http://127.0.0.1.evil.example", "null",
                 live.url.replace("127.0.0.1", "localhost")):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            _ws(live, evil, cookie)
        assert refused.value.status_code == 400, evil
    # The app's own pages still connect with the cookie and read the room.
    ws = _ws(live, live.url, cookie)
    assert ws.recv().startswith("40/consult,{")
    ack = _join(ws, case_id)
    assert ack["ok"] is True
    assert [m["body"] for m in ack["messages"]] == ["病史保密"]
    ws.close()


@pytest.fixture
def app_overrides():
    return {"ALLOWED_ORIGINS": ["https://consult.hospital.example"], "SOCKET_AUTH_RECHECK_SECONDS": 1}


def test_origins_named_in_the_config_are_accepted(live, mdt, app):
    case_id, ids, _ = mdt
    cookie = _login(live, app, ids["owner"])
    ws = _ws(live, "https://consult.hospital.example", cookie)
    assert ws.recv().startswith("40/consult,{")
    ws.close()


def test_a_revoked_token_sends_nothing_more_and_its_socket_is_dropped(live, mdt, clients, api_as, client):
    case_id, ids, tokens = mdt
    owner = clients(live.url, tokens["owner"]).connect()
    consultant = clients(live.url, tokens["consultant"]).connect()
    for c in (owner, consultant):
        assert c.call("join", {"case_id": case_id})["ok"]
    assert owner.call("message", {"case_id": case_id, "body": "before", "client_id": client_id()})["ok"]
    r = client.delete("/api/auth/token", headers={"Authorization": f"Bearer {tokens['owner']}"})
    assert r.status_code == 204
    for event, payload in (("message", {"body": "after", "client_id": client_id()}), ("typing", {}),
                           ("join", {}), ("viewer", {"index": 1}), ("present", {"action": "take"})):
        ack = owner.call(event, {"case_id": case_id, **payload})
        assert ack == {"ok": False, "error": "authentication required"}, (event, ack)
    # Within the recheck interval (1 s here) every process drops the socket: no more broadcasts.
    deadline = time.monotonic() + 5
    while owner.sio.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not owner.sio.connected
    assert consultant.call("message", {"case_id": case_id, "body": "私密", "client_id": client_id()})["ok"]
    assert [m["body"] for m in owner.of("message")] == ["before"]
    bodies = [m["body"] for m in api_as(ids["consultant"]).get(f"/api/cases/{case_id}/messages").json["items"]]
    assert bodies == ["before", "私密"]
    # The room goes on for the others; the revoked token cannot connect again.
    assert consultant.call("typing", {"case_id": case_id})["ok"]
    with pytest.raises(socketio.exceptions.ConnectionError):
        clients(live.url, tokens["owner"]).connect()
