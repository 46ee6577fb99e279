"""A chat message (or annotation) racing its author's removal: stored before the removal commits, or refused.

The message's handler checks access when the event arrives; without a second check in the
message's own transaction, under a lock the removal also takes, a removal committed between that
check and the insert let the removed participant's message be stored and sent to the room.

The race is made certain rather than hoped for: the removal is committed (over HTTP, by another
thread and connection) at the point in ``post_message`` after the handler's check, before the
insert. A free-running race of messages against a removal lands in that gap too rarely to fail
reliably on the old code.
"""

import threading
import time

import pytest
import sqlalchemy as sa

from app.consult import service
from app.consult.models import Annotation, Message
from app.extensions import db
from tests.consult.test_room import joined
from tests.imaging.dicom_samples import sample, upload
from tests.support.live import client_id


@pytest.fixture
def removed_after_the_check(mdt, api_as, monkeypatch):
    """Remove the radiologist (over HTTP, committed) once their message has passed its first check."""
    case_id, ids, _ = mdt
    real = service._by_client_id
    removals = []

    def removal_commits_meanwhile(case_id_, author_id, client_id_):
        if author_id == ids["radiology"] and not removals:
            remover = threading.Thread(target=lambda: removals.append(
                api_as(ids["consultant"]).delete(f"/api/cases/{case_id}/participants/{ids['radiology']}")))
            remover.start()
            remover.join(15)
            assert removals, "the removal did not finish (blocked by the message's transaction?)"
            assert removals[0].status_code == 204, removals[0].json
        return real(case_id_, author_id, client_id_)

    monkeypatch.setattr(service, "_by_client_id", removal_commits_meanwhile)
    return removals


def _stored(app, case_id: int, author_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Message.body).where(
            Message.case_id == case_id, Message.author_id == author_id)))


def test_a_socket_message_checked_just_before_its_authors_removal_is_not_stored(
        app, live, mdt, clients, removed_after_the_check):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    ack = radiology.call("message", {"case_id": case_id, "body": "移除之后发出的", "client_id": client_id()})
    assert removed_after_the_check, "the removal did not run between the check and the insert"
    assert ack == {"ok": False, "error": "case not found"}
    assert _stored(app, case_id, ids["radiology"]) == []
    owner.call("message", {"case_id": case_id, "body": "之后", "client_id": client_id()})
    owner.wait_for("message", lambda m: m["body"] == "之后")
    time.sleep(0.3)
    assert [m["body"] for m in owner.of("message")] == ["之后"]  # nothing of the removed author's reached the room


def test_an_http_message_checked_just_before_its_authors_removal_is_not_stored(
        app, live, mdt, clients, api_as, removed_after_the_check):
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    r = api_as(ids["radiology"]).post(f"/api/cases/{case_id}/messages",
                                      json={"body": "移除之后发出的", "client_id": client_id()})
    assert removed_after_the_check, "the removal did not run between the check and the insert"
    assert r.status_code == 404, r.json
    assert _stored(app, case_id, ids["radiology"]) == []
    time.sleep(0.3)
    assert owner.of("message") == []


def test_a_removal_waits_for_a_message_already_checked_under_its_lock(app, live, mdt, clients, api_as, monkeypatch):
    """The other order: a message that passed the check under the lock is stored, and the removal
    commits after it (it waits for the message's transaction), so the message was the member's."""
    case_id, ids, tokens = mdt
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    real = service.message_json
    removals, finished, early = [], [], []

    def removal_starts_meanwhile(message):
        if message.author_id == ids["radiology"] and not removals:
            def remove():
                removals.append(api_as(ids["consultant"]).delete(
                    f"/api/cases/{case_id}/participants/{ids['radiology']}"))
                finished.append(time.monotonic())
            threading.Thread(target=remove).start()
            time.sleep(1)
            early.append(bool(finished))  # the removal committed while this message was not yet stored
        return real(message)

    monkeypatch.setattr(service, "message_json", removal_starts_meanwhile)
    ack = radiology.call("message", {"case_id": case_id, "body": "移除之前发出的", "client_id": client_id()})
    assert early == [False], "the removal did not wait for the message checked under the lock"
    assert ack["ok"] is True, ack
    deadline = time.monotonic() + 10
    while not removals and time.monotonic() < deadline:
        time.sleep(0.05)
    assert removals[0].status_code == 204
    assert _stored(app, case_id, ids["radiology"]) == ["移除之前发出的"]
    owner.wait_for("message", lambda m: m["body"] == "移除之前发出的")


def test_a_message_checked_just_before_its_author_declined_the_case_is_not_stored(
        app, live, clients, make_user, make_case, api_as, token_for, monkeypatch):
    """A loss of access that writes the case row (here a decline) holds its lock already."""
    owner, specialist = make_user(), make_user(specialty="gynecology")
    case_id = make_case(owner)
    assert api_as(owner).post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist}).status_code == 200
    declining, _ = joined(clients, live, token_for(specialist), case_id)
    real, declined = service._by_client_id, []

    def declined_meanwhile(case_id_, author_id, client_id_):
        if author_id == specialist and not declined:
            t = threading.Thread(target=lambda: declined.append(
                api_as(specialist).post(f"/api/cases/{case_id}/decline", json={"reason": "非本专业"})))
            t.start()
            t.join(15)
        return real(case_id_, author_id, client_id_)

    monkeypatch.setattr(service, "_by_client_id", declined_meanwhile)
    ack = declining.call("message", {"case_id": case_id, "body": "拒绝之后发出的", "client_id": client_id()})
    assert declined[0].status_code == 200, declined[0].json
    assert ack == {"ok": False, "error": "case not found"}
    assert _stored(app, case_id, specialist) == []


def test_an_annotation_checked_just_before_its_authors_removal_is_not_stored(
        app, live, mdt, clients, api_as, monkeypatch):
    """The same race for the room's other stored change."""
    case_id, ids, tokens = mdt
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                                  content_type="multipart/form-data")
    sop = r.json["accepted"][0]["sop_instance_uid"]
    owner, _ = joined(clients, live, tokens["owner"], case_id)
    radiology, _ = joined(clients, live, tokens["radiology"], case_id)
    real, removals = service._length_mm, []

    def removed_meanwhile(instance, points):
        if not removals:
            t = threading.Thread(target=lambda: removals.append(
                api_as(ids["consultant"]).delete(f"/api/cases/{case_id}/participants/{ids['radiology']}")))
            t.start()
            t.join(15)
        return real(instance, points)

    monkeypatch.setattr(service, "_length_mm", removed_meanwhile)
    ack = radiology.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "frame": 1, "kind": "line",
                                      "points": [[10, 20], [70, 100]]})
    assert removals[0].status_code == 204
    assert ack == {"ok": False, "error": "case not found"}
    with app.app_context():
        assert db.session.scalars(sa.select(Annotation).where(Annotation.case_id == case_id)).all() == []
    time.sleep(0.3)
    assert owner.of("annotation") == []
