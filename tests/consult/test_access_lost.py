"""Whoever loses access to a case leaves its room at once, and only those in the room act in it.

Each event a socket sends is checked against the case, but a socket that only listens sends
nothing: without these rules a specialist who declined the case, or a doctor whose account was
deactivated, went on receiving every message of the room.
"""

import re
import threading
import time

import pytest
import requests
import websocket

from tests.consult.test_room import joined
from tests.consult.test_socket_auth import UA, _join, _login, _ws
from tests.support.live import client_id


@pytest.fixture
def app_overrides():
    return {"SOCKET_AUTH_RECHECK_SECONDS": 1}


def _message(sender, case_id: int, body: str) -> None:
    assert sender.call("message", {"case_id": case_id, "body": body, "client_id": client_id()})["ok"]


def test_a_specialist_who_declines_leaves_the_room_and_hears_nothing_more(live, clients, make_user, make_case,
                                                                           api_as, token_for):
    owner, specialist = make_user(), make_user(specialty="gynecology")
    case_id = make_case(owner)
    assert api_as(owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist}).status_code == 200
    doctor, _ = joined(clients, live, token_for(owner), case_id)
    declining, ack = joined(clients, live, token_for(specialist), case_id)
    assert ack["online"] == sorted([owner, specialist])
    assert declining.call("present", {"case_id": case_id, "action": "take"})["ok"]

    r = api_as(specialist).post(f"/api/cases/{case_id}/decline", json={"reason": "非本专业"})
    assert r.status_code == 200, r.json
    assert declining.wait_for("removed")["case_id"] == case_id
    doctor.wait_for("presence", lambda d: d["online"] == [owner])
    doctor.wait_for("presenter", lambda d: d["user_id"] is None)  # their presenter role ended with them
    _message(doctor, case_id, "转给其他专家之后的病情")
    doctor.wait_for("message", lambda m: m["body"] == "转给其他专家之后的病情")
    time.sleep(0.3)
    assert [m["body"] for m in declining.of("message")] == []
    late, ack = joined(clients, live, token_for(owner), case_id)
    assert (ack["online"], ack["presenter"]) == ([owner], None)


def _closed(ws, seconds: float = 5) -> bool:
    """Whether the server closes the raw socket within the time (answering its pings meanwhile)."""
    ws.settimeout(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            packet = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except websocket.WebSocketConnectionClosedException:
            return True
        if packet == "2":
            ws.send("3")
        if packet == "" or packet.startswith(("41/consult", "1")):  # socket.io / engine.io disconnect
            return True
    return False


def test_a_deactivated_accounts_browser_socket_is_dropped(live, app, mdt, make_user, api_as, clients):
    case_id, ids, tokens = mdt
    cookie = _login(live, app, ids["radiology"])
    ws = _ws(live, live.url, cookie)  # the browser's socket: the login session, no API token
    assert _join(ws, case_id)["ok"] is True
    admin = api_as(make_user(role="admin"))
    assert admin.patch(f"/api/admin/users/{ids['radiology']}", json={"active": False}).status_code == 200
    # Within the recheck interval (1 s here) the server closes it: the room's next message never reaches it.
    assert _closed(ws), "the deactivated account's socket was not dropped"
    owner = clients(live.url, tokens["owner"]).connect()
    assert owner.call("join", {"case_id": case_id})["ok"]
    owner.wait_for("presence", lambda d: ids["radiology"] not in d["online"])


def test_typing_views_and_the_presenter_need_the_socket_in_the_room(live, mdt, clients):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    outside = clients(live.url, tokens["radiology"]).connect()  # a participant's socket that never joined
    for event, payload in (("present", {"action": "take"}), ("typing", {"typing": True}),
                           ("viewer", {"series_uid": "1.2.3", "index": 1})):
        ack = outside.call(event, {"case_id": case_id, **payload})
        assert ack == {"ok": False, "error": "join the case room first"}, (event, ack)
    outside.disconnect()
    late, ack = joined(clients, live, tokens["consultant"], case_id)
    assert (ack["presenter"], ack["viewer"]) == (None, None)  # nothing of it was kept
    time.sleep(0.3)
    assert owner.of("typing") == owner.of("viewer") == owner.of("presenter") == []
    # In the room, the same events are taken.
    assert late.call("present", {"case_id": case_id, "action": "take"})["ok"]
    assert owner.wait_for("presenter")["user_id"] == ids["consultant"]


def test_a_removed_presenter_no_longer_presents(live, mdt, clients, api_as):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    assert radiology.call("present", {"case_id": case_id, "action": "take"})["ok"]
    assert radiology.call("viewer", {"case_id": case_id, "series_uid": "1.2.3", "index": 4})["ok"]
    owner.wait_for("presenter", lambda d: d["user_id"] == ids["radiology"])
    response = api_as(ids["consultant"]).delete(f"/api/cases/{case_id}/participants/{ids['radiology']}")
    assert response.status_code == 204
    radiology.wait_for("removed")
    owner.wait_for("presenter", lambda d: d["user_id"] is None)
    _, ack = joined(clients, live, tokens["consultant"], case_id)
    assert (ack["presenter"], ack["viewer"]) == (None, None)
    assert ids["radiology"] not in ack["online"]


def test_logging_out_drops_the_sockets_that_login_opened_and_only_those(live, app, mdt):
    # A page left open elsewhere (or a copy of the cookie) kept its socket, and the room's messages,
    # after the doctor logged out: the login ends at logout, and its sockets with it.
    case_id, ids, _ = mdt
    ward, phone = _login(live, app, ids["radiology"]), _login(live, app, ids["radiology"])
    on_ward, on_phone = _ws(live, live.url, ward), _ws(live, live.url, phone)
    try:
        assert _join(on_ward, case_id)["ok"] is True
        assert _join(on_phone, case_id)["ok"] is True
        headers = {"Cookie": ward, "User-Agent": UA}
        page = requests.get(live.url + "/", headers=headers, timeout=10).text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        r = requests.post(live.url + "/logout", data={"csrf_token": csrf}, headers=headers, allow_redirects=False,
                          timeout=10)
        assert r.status_code == 302
        assert _closed(on_ward), "the socket of the login that ended was not dropped"
        assert _join(on_phone, case_id)["ok"] is True  # the same doctor's other login goes on
    finally:
        # Closed here, while the server runs: a socket left open keeps its process sweeping a
        # database the test has already dropped.
        on_ward.close()
        on_phone.close()


def test_a_socket_pulled_out_of_the_room_must_join_again_to_act_in_it(live, mdt, clients, api_as):
    """A removed participant's socket was pulled out of the room but still counted as in it: invited
    again, it could take the presenter role, share views and type without joining, and the room saw
    a presenter who was not in it (and whose views it never got back)."""
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    consultant = api_as(ids["consultant"])
    assert consultant.delete(f"/api/cases/{case_id}/participants/{ids['radiology']}").status_code == 204
    radiology.wait_for("removed")
    owner.wait_for("presence", lambda d: d["online"] == [ids["owner"]])
    r = consultant.post(f"/api/cases/{case_id}/participants", json={"user_id": ids["radiology"],
                                                                    "discipline": "radiology"})
    assert r.status_code == 201, r.json
    for event, payload in (("present", {"action": "take"}), ("typing", {"typing": True}),
                           ("viewer", {"series_uid": "1.2.3", "index": 1})):
        ack = radiology.call(event, {"case_id": case_id, **payload})
        assert ack == {"ok": False, "error": "join the case room first"}, (event, ack)
    time.sleep(0.3)
    assert owner.of("presenter") == owner.of("typing") == owner.of("viewer") == []
    # Joining again, it is back in the room.
    assert radiology.call("join", {"case_id": case_id})["ok"]
    assert radiology.call("present", {"case_id": case_id, "action": "take"})["ok"]
    assert owner.wait_for("presenter")["user_id"] == ids["radiology"]


def test_a_join_that_races_a_removal_does_not_leave_the_removed_user_listening(app, live, mdt, clients, api_as,
                                                                              monkeypatch):
    """A join checked just before a removal committed, and entered into the room just after the
    pull-out had read who was in it, left the removed participant listening to the room for as long
    as the socket stayed open (a listening socket sends nothing to be refused)."""
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    store = app.extensions["presence"]
    real_join = store.join

    def join_after_a_removal(case, sid, user_id):
        if user_id == ids["radiology"]:
            # The removal commits, and its pull-out runs, between the join's check and its entry.
            remover = threading.Thread(target=lambda: api_as(ids["consultant"]).delete(
                f"/api/cases/{case_id}/participants/{ids['radiology']}"))
            remover.start()
            remover.join(10)
            time.sleep(0.5)
        return real_join(case, sid, user_id)

    monkeypatch.setattr(store, "join", join_after_a_removal)
    radiology = clients(live.url, tokens["radiology"]).connect()
    ack = radiology.call("join", {"case_id": case_id})
    assert ack["ok"] is False, ack
    _message(owner, case_id, "移除之后的病情")
    owner.wait_for("message", lambda m: m["body"] == "移除之后的病情")
    time.sleep(0.3)
    assert radiology.of("message") == []
    owner.wait_for("presence", lambda d: ids["radiology"] not in d["online"])
    _, late = joined(clients, live, tokens["consultant"], case_id)
    assert ids["radiology"] not in late["online"]
