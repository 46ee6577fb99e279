"""The consultation room over real Socket.IO connections (WebSocket) to a live server."""

import threading
import time

import pytest
import socketio
import sqlalchemy as sa

from app.extensions import db
from tests.support.live import client_id


def joined(make, live, token, case_id, since=0):
    c = make(live.url, token).connect()
    ack = c.call("join", {"case_id": case_id, "since": since})
    assert ack["ok"] is True, ack
    return c, ack


def test_connection_without_or_with_a_bad_token_is_refused(live, clients):
    for token in (None, "hz_not-a-token"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            clients(live.url, token).connect()


def test_a_non_member_cannot_join(live, mdt, clients):
    case_id, _, tokens = mdt
    c = clients(live.url, tokens["outsider"]).connect()
    assert c.call("join", {"case_id": case_id, "since": 0}) == {"ok": False, "error": "case not found"}
    assert c.call("message", {"case_id": case_id, "body": "hi", "client_id": client_id()})["ok"] is False


def test_three_members_exchange_messages_in_order(live, mdt, clients):
    case_id, ids, tokens = mdt
    people = {who: joined(clients, live, tokens[who], case_id)[0] for who in ("owner", "consultant", "radiology")}
    sent = []
    for round_ in range(3):
        for who, c in people.items():
            body = f"{who} 第{round_}条"
            ack = c.call("message", {"case_id": case_id, "body": body, "client_id": client_id()})
            assert ack["ok"] is True
            sent.append((ack["seq"], body))
    assert [s for s, _ in sent] == list(range(1, 10))
    for c in people.values():
        c.wait_for("message", lambda d: d["seq"] == 9)
        got = [(m["seq"], m["body"]) for m in c.of("message")]
        assert got == sent
    first = people["owner"].of("message")[0]
    assert first["author"] == {"id": ids["owner"], "name": "李春梅"}
    assert set(first) >= {"case_id", "seq", "client_id", "author", "body", "at"}


def test_reconnect_with_since_gets_exactly_the_missed_messages(live, mdt, clients, api_as):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    owner.call("message", {"case_id": case_id, "body": "before", "client_id": client_id()})
    radiology.wait_for("message", lambda d: d["body"] == "before")
    last_seen = max(m["seq"] for m in radiology.of("message"))
    radiology.disconnect()
    for i in range(3):
        owner.call("message", {"case_id": case_id, "body": f"missed {i}", "client_id": client_id()})
    again, ack = joined(clients, live, tokens["radiology"], case_id, since=last_seen)
    assert [m["body"] for m in ack["messages"]] == ["missed 0", "missed 1", "missed 2"]
    assert [m["seq"] for m in ack["messages"]] == [last_seen + 1, last_seen + 2, last_seen + 3]
    owner.call("message", {"case_id": case_id, "body": "after", "client_id": client_id()})
    again.wait_for("message", lambda d: d["body"] == "after")
    assert [m["body"] for m in again.of("message")] == ["after"]  # nothing replayed twice
    # The same catch-up over HTTP.
    http = api_as(ids["radiology"]).get(f"/api/cases/{case_id}/messages?since={last_seen}").json["items"]
    assert [m["body"] for m in http] == ["missed 0", "missed 1", "missed 2", "after"]


def test_a_resend_with_the_same_client_id_is_not_duplicated(live, mdt, clients, api_as):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    cid = client_id()
    first = owner.call("message", {"case_id": case_id, "body": "血常规已上传", "client_id": cid})
    again = owner.call("message", {"case_id": case_id, "body": "血常规已上传", "client_id": cid})
    assert again == {"ok": True, "seq": first["seq"], "duplicate": True}
    owner.call("message", {"case_id": case_id, "body": "next", "client_id": client_id()})
    owner.wait_for("message", lambda d: d["body"] == "next")
    assert [m["body"] for m in owner.of("message")] == ["血常规已上传", "next"]
    assert len(api_as(ids["owner"]).get(f"/api/cases/{case_id}/messages").json["items"]) == 2


def test_presence_follows_join_leave_and_an_abrupt_disconnect(live, mdt, clients):
    case_id, ids, tokens = mdt
    owner, ack = joined(clients, live, tokens["owner"], case_id)
    assert ack["online"] == [ids["owner"]]
    consultant, ack = joined(clients, live, tokens["consultant"], case_id)
    assert ack["online"] == sorted([ids["owner"], ids["consultant"]])
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    owner.wait_for("presence", lambda d: len(d["online"]) == 3)
    assert consultant.call("leave", {"case_id": case_id}) == {"ok": True}
    owner.wait_for("presence", lambda d: ids["consultant"] not in d["online"])
    # Abrupt: the radiologist's network drops; no disconnect packet is ever sent.
    radiology.sio.eio.ws.sock.shutdown(2)
    owner.wait_for("presence", lambda d: d["online"] == [ids["owner"]], timeout=15)


def test_typing_reaches_the_others(live, mdt, clients):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    consultant.call("typing", {"case_id": case_id, "typing": True})
    assert owner.wait_for("typing")["user_id"] == ids["consultant"]
    assert consultant.of("typing") == []


def test_long_or_empty_messages_are_refused_with_a_reason(live, mdt, clients):
    case_id, _, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    ack = owner.call("message", {"case_id": case_id, "body": "x" * 4001, "client_id": client_id()})
    assert ack["ok"] is False
    assert ack["error"] == "invalid field: body"
    ack = owner.call("message", {"case_id": case_id, "body": "   ", "client_id": client_id()})
    assert ack["ok"] is False
    assert owner.call("message", {"case_id": case_id, "body": "ok", "client_id": client_id()})["seq"] == 1


def test_a_message_is_one_transaction_on_one_pooled_connection(app, live, mdt, clients):
    """Guards the hot path (docs/BENCHMARKS.md): reading the case after the commit cost a second
    pooled connection, a SELECT and a ROLLBACK on every chat message."""
    case_id, _, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    with app.app_context():
        engine = db.engine
    checkouts, statements = [], []
    on_checkout = lambda *a: checkouts.append(1)  # noqa: E731
    on_execute = lambda conn, cursor, sql, *a: statements.append(sql.split()[0].upper())  # noqa: E731
    sa.event.listen(engine.pool, "checkout", on_checkout)
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        assert owner.call("message", {"case_id": case_id, "body": "一次", "client_id": client_id()})["ok"]
    finally:
        sa.event.remove(engine.pool, "checkout", on_checkout)
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    assert len(checkouts) == 1
    assert statements[-1] == "INSERT"  # the message; nothing is read back after the commit


def test_messages_are_rate_limited_per_user(live, mdt, clients):
    case_id, _, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    acks = [owner.call("message", {"case_id": case_id, "body": str(i), "client_id": client_id()}) for i in range(21)]
    assert all(a["ok"] for a in acks[:20])
    assert acks[20] == {"ok": False, "error": "too many messages", "detail": "at most 20 messages in 10 seconds"}


def test_presenter_is_followed_and_handed_over_and_late_joiners_catch_up(live, mdt, clients):
    case_id, ids, tokens = mdt
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    took = consultant.call("present", {"case_id": case_id, "action": "take"})
    assert (took["ok"], took["presenter"]) == (True, ids["consultant"])
    assert took["presenter_version"] > 0  # the version of this change (tests/consult/test_presence_versions.py)
    radiology.wait_for("presenter", lambda d: d["user_id"] == ids["consultant"])
    view = {"case_id": case_id, "series_uid": "2.25.7", "index": 42, "wc": 40, "ww": 400, "zoom": 1.5,
            "pan": [10, -4]}
    consultant.call("viewer", view)
    seen = radiology.wait_for("viewer")
    assert (seen["index"], seen["user_id"], seen["presenter"], seen["zoom"]) == (42, ids["consultant"], True, 1.5)
    assert consultant.of("viewer") == []
    late, ack = joined(clients, live, tokens["owner"], case_id)
    assert ack["presenter"] == ids["consultant"]
    assert ack["viewer"]["index"] == 42
    # Hand over to the radiologist, who now leads.
    ack = consultant.call("present", {"case_id": case_id, "action": "handover", "user_id": ids["radiology"]})
    assert ack["presenter"] == ids["radiology"]
    late.wait_for("presenter", lambda d: d["user_id"] == ids["radiology"])
    radiology.call("viewer", {**view, "index": 7})
    assert late.wait_for("viewer", lambda d: d["index"] == 7)["presenter"] is True
    ack = consultant.call("present", {"case_id": case_id, "action": "release"})
    assert ack == {"ok": False, "error": "you are not presenting"}


def test_a_view_that_arrives_after_a_newer_one_from_the_same_page_is_dropped(live, mdt, clients):
    """The server runs a client's events on several threads: the page numbers its views so a late one loses."""
    case_id, ids, tokens = mdt
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    consultant.call("present", {"case_id": case_id, "action": "take"})
    page, reloaded = client_id(), client_id()
    view = {"case_id": case_id, "series_uid": "2.25.7", "source": page}
    assert consultant.call("viewer", {**view, "index": 5, "seq": 5}) == {"ok": True}
    assert consultant.call("viewer", {**view, "index": 3, "seq": 3}) == {"ok": True}  # handled late: not an error
    assert consultant.call("viewer", {**view, "index": 6, "seq": 6}) == {"ok": True}
    radiology.wait_for("viewer", lambda d: d["seq"] == 6)
    assert [v["index"] for v in radiology.of("viewer")] == [5, 6]
    late, ack = joined(clients, live, tokens["owner"], case_id)
    assert (ack["viewer"]["index"], ack["viewer"]["seq"]) == (6, 6)
    # The presenter reloads the page: a new source starts again from 1, and counts.
    consultant.call("viewer", {**view, "source": reloaded, "index": 1, "seq": 1})
    assert late.wait_for("viewer")["index"] == 1
    assert joined(clients, live, tokens["owner"], case_id)[1]["viewer"]["index"] == 1
    for bad in ({"source": "not hex!"}, {"seq": -1}, {"seq": 2**53}):
        assert consultant.call("viewer", {**view, "index": 9, **bad})["error"].startswith("invalid field"), bad


def test_the_kept_view_is_always_the_presenters(live, mdt, clients):
    """A view handled after the presenter changed is relayed as a non-presenter's (followers ignore it) and not kept."""
    case_id, ids, tokens = mdt
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    view = {"case_id": case_id, "series_uid": "2.25.7", "source": client_id()}
    consultant.call("present", {"case_id": case_id, "action": "take"})
    consultant.call("viewer", {**view, "index": 4, "seq": 1})
    radiology.call("present", {"case_id": case_id, "action": "take"})
    assert joined(clients, live, tokens["owner"], case_id)[1]["viewer"] is None  # not the consultant's any more
    consultant.call("viewer", {**view, "index": 5, "seq": 2})  # late: no longer presenting
    assert owner.wait_for("viewer", lambda d: d["index"] == 5)["presenter"] is False
    ack = joined(clients, live, tokens["owner"], case_id)[1]
    assert (ack["presenter"], ack["viewer"]) == (ids["radiology"], None)
    radiology.call("viewer", {"case_id": case_id, "series_uid": "2.25.8", "index": 1})
    assert joined(clients, live, tokens["owner"], case_id)[1]["viewer"]["user_id"] == ids["radiology"]


def test_a_burst_of_views_reaches_the_followers_in_the_order_sent(live, mdt, clients):
    case_id, ids, tokens = mdt
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    consultant.call("present", {"case_id": case_id, "action": "take"})
    source = client_id()
    for seq in range(1, 61):  # without waiting for the acks, as a browser scrolling through a series
        consultant.sio.emit("viewer", {"case_id": case_id, "series_uid": "2.25.7", "index": seq, "source": source,
                                       "seq": seq}, namespace="/consult")
    radiology.wait_for("viewer", lambda d: d["seq"] == 60)
    got = [v["seq"] for v in radiology.of("viewer")]
    assert got == sorted(got), got  # some may be dropped (overtaken), none arrives after a newer one
    assert joined(clients, live, tokens["owner"], case_id)[1]["viewer"]["seq"] == 60


def test_a_removed_participant_is_dropped_from_the_room_at_once(live, mdt, clients, api_as):
    case_id, ids, tokens = mdt
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    assert api_as(ids["consultant"]).delete(f"/api/cases/{case_id}/participants/{ids['radiology']}").status_code == 204
    assert radiology.wait_for("removed")["case_id"] == case_id
    consultant.wait_for("presence", lambda d: ids["radiology"] not in d["online"])
    consultant.call("message", {"case_id": case_id, "body": "after removal", "client_id": client_id()})
    consultant.wait_for("message", lambda d: d["body"] == "after removal")
    assert [m["body"] for m in radiology.of("message")] == []
    ack = radiology.call("message", {"case_id": case_id, "body": "still here?", "client_id": client_id()})
    assert ack == {"ok": False, "error": "case not found"}


def test_a_client_id_that_is_not_a_plain_token_is_refused_and_not_stored(live, mdt, clients, api_as):
    """A client_id is echoed to every member's page; ``x"]`` once broke every later join there."""
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    for bad in ('x"]', "a b", "", "é", "x" * 65, 7):
        ack = owner.call("message", {"case_id": case_id, "body": "hi", "client_id": bad})
        assert ack["ok"] is False, bad
        assert ack["error"] == "invalid field: client_id"
    assert api_as(ids["owner"]).get(f"/api/cases/{case_id}/messages").json["items"] == []
    assert owner.call("message", {"case_id": case_id, "body": "ok", "client_id": "Ab-9_" + "x" * 59})["seq"] == 1


def test_the_viewer_state_is_validated_and_only_known_fields_are_relayed(live, mdt, clients):
    case_id, ids, tokens = mdt
    consultant, _ = joined(clients, live, tokens["consultant"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    consultant.call("present", {"case_id": case_id, "action": "take"})
    for bad in ({"zoom": float("nan")}, {"wc": float("inf")}, {"series_uid": "1" * 65}, {"pan": [1, "x"]},
                {"index": -1}):
        ack = consultant.call("viewer", {"case_id": case_id, "series_uid": "2.25.7", **bad})
        assert ack["ok"] is False, bad
        assert ack["error"].startswith("invalid field"), ack
    ack = consultant.call("viewer", {"case_id": case_id, "series_uid": "2.25.7", "index": 3, "note": "<img>"})
    assert ack == {"ok": True}
    seen = radiology.wait_for("viewer")
    assert seen == {"series_uid": "2.25.7", "index": 3, "case_id": case_id, "user_id": ids["consultant"],
                    "presenter": True}
    assert len(radiology.of("viewer")) == 1  # none of the refused states was relayed
    late, ack = joined(clients, live, tokens["owner"], case_id)
    assert ack["viewer"] == seen


def test_a_connection_that_closes_while_its_join_runs_leaves_no_one_behind(app, live, mdt, clients, monkeypatch):
    """A page closed (or reloaded) while its join was still being handled: the disconnect ran first and
    found nothing to leave, then the join put the dead connection in the room, where it stayed online
    (and, had it presented, presenting) until the server restarted."""
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    store = app.extensions["presence"]
    real_join, entered, closed = store.join, threading.Event(), threading.Event()

    def slow_join(case, sid, user_id):
        if user_id == ids["radiology"]:
            entered.set()
            closed.wait(10)
            time.sleep(0.5)  # the server handles the disconnect meanwhile
        return real_join(case, sid, user_id)

    monkeypatch.setattr(store, "join", slow_join)
    radiology = clients(live.url, tokens["radiology"]).connect()
    radiology.sio.emit("join", {"case_id": case_id}, namespace="/consult")
    assert entered.wait(10)
    radiology.abort()
    closed.set()
    time.sleep(1)
    _, ack = joined(clients, live, tokens["consultant"], case_id)
    assert ack["online"] == sorted([ids["owner"], ids["consultant"]])


def test_a_history_longer_than_one_page_says_there_is_more(app, live, mdt, clients, api_as):
    """The join ack and GET /messages stopped at the first 1,000 messages after ``since`` without
    saying so: a page opened on a longer room showed the oldest 1,000, never the newest, and went on
    from the live ones past the gap (its next ``since``), so the gap was never filled."""
    case_id, ids, tokens = mdt
    from app.consult.models import Message, MessageCounter

    with app.app_context():
        db.session.add_all([Message(case_id=case_id, seq=n, author_id=ids["owner"], client_id=f"c{n}", body=f"第{n}条")
                            for n in range(1, 1002)])
        db.session.add(MessageCounter(case_id=case_id, last_seq=1001))
        db.session.commit()
    c, ack = joined(clients, live, tokens["consultant"], case_id)
    assert (len(ack["messages"]), ack["more"]) == (1000, True)
    assert c.call("join", {"case_id": case_id, "since": 1000})["more"] is False
    api = api_as(ids["consultant"])
    first = api.get(f"/api/cases/{case_id}/messages").json
    assert (len(first["items"]), first["more"]) == (1000, True)
    rest = api.get(f"/api/cases/{case_id}/messages?since={first['items'][-1]['seq']}").json
    assert ([m["body"] for m in rest["items"]], rest["more"]) == (["第1001条"], False)


def test_a_take_that_races_its_own_disconnect_leaves_no_absent_presenter(app, live, mdt, clients, monkeypatch):
    """A take handled while its connection closed: the leave found no presenter to end, then the take
    made the departed user presenter, and the room followed someone absent until the next join."""
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    store = app.extensions["presence"]
    real_set, entered, closed = store.set_presenter, threading.Event(), threading.Event()

    def slow_set(case, user_id, *args, **kwargs):
        if user_id == ids["radiology"]:
            entered.set()
            closed.wait(10)
            time.sleep(0.5)  # the server handles the disconnect meanwhile
        return real_set(case, user_id, *args, **kwargs)

    monkeypatch.setattr(store, "set_presenter", slow_set)
    radiology.sio.emit("present", {"case_id": case_id, "action": "take"}, namespace="/consult")
    assert entered.wait(10)
    radiology.abort()
    closed.set()
    owner.wait_for("presence", lambda d: d["online"] == [ids["owner"]])
    time.sleep(1)
    assert store.presenter(case_id) is None
    assert max(owner.of("presenter"), key=lambda d: d["version"])["user_id"] is None
