"""The inbox, marking read, overdue cases, and email through a real SMTP server."""

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from app.accounts.models import User
from app.cases.models import Case
from app.core.time import utcnow
from app.extensions import db
from app.notifications.models import Notification
from app.notifications.service import TEXTS, notify, text_in
from tests.conftest import free_port


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler name
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def pair(make_user, api_as, make_case):
    owner, specialist = make_user(), make_user(specialty="gynecology", email="wang@test.huizhen")
    case_id = make_case(owner, title="张三 子宫肌瘤", urgency="emergency")
    return case_id, api_as(owner), api_as(specialist), specialist


def test_sharing_notifies_the_specialist_who_marks_it_read(pair):
    case_id, owner, specialist, specialist_id = pair
    owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id})
    inbox = specialist.get("/api/notifications").json
    assert inbox["unread"] == 1
    note = inbox["items"][0]
    assert (note["kind"], note["case_id"], note["read"]) == ("shared", case_id, False)
    assert "邀请您会诊" in note["text"]
    assert specialist.post(f"/api/notifications/{note['id']}/read").json == {"unread": 0}
    assert specialist.get("/api/notifications?unread=1").json["items"] == []
    # Someone else's notification cannot be touched.
    assert owner.post(f"/api/notifications/{note['id']}/read").status_code == 404


def test_every_step_notifies_the_one_who_must_act(pair):
    case_id, owner, specialist, specialist_id = pair
    owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id})
    specialist.post(f"/api/cases/{case_id}/accept")
    specialist.post(f"/api/cases/{case_id}/questions", json={"question": "?"})
    owner.post(f"/api/cases/{case_id}/answers", json={"answer": "!"})
    specialist.post(f"/api/cases/{case_id}/opinion", json={"diagnosis": "d", "recommendations": "r"})
    assert [n["kind"] for n in reversed(owner.get("/api/notifications").json["items"])] == [
        "accepted", "question", "opinion_signed"]
    assert [n["kind"] for n in reversed(specialist.get("/api/notifications").json["items"])] == [
        "shared", "answered_question"]
    owner.post("/api/notifications/read-all")
    assert owner.get("/api/notifications").json["unread"] == 0


def test_overdue_cases_are_flagged(app, pair):
    case_id, owner, specialist, specialist_id = pair
    r = owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id})
    assert r.json["overdue"] is False
    due = r.json["due_at"]
    assert due is not None  # emergency: 6 hours
    assert specialist.get("/api/notifications").json["overdue"] == []
    with app.app_context():
        case = db.session.get(Case, case_id)
        case.due_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    for api in (owner, specialist):
        overdue = api.get("/api/notifications").json["overdue"]
        assert [o["case_id"] for o in overdue] == [case_id]
    assert specialist.get("/api/cases").json["items"][0]["overdue"] is True


def test_email_goes_out_without_clinical_content(app, pair, smtp):
    controller, handler = smtp
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port, MAIL_SENDER="noreply@huizhen.test",
                      PUBLIC_URL="https://huizhen.example")
    case_id, owner, specialist, specialist_id = pair
    owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id})
    _wait_for_mail(handler, 1)
    assert len(handler.messages) == 1
    recipients, content = handler.messages[0]
    assert recipients == ["wang@test.huizhen"]
    assert f"#{case_id}" in content
    assert f"https://huizhen.example/cases/{case_id}" in content
    assert "张三" not in content  # the title may name the patient: never mailed


def test_no_mail_server_means_no_mail(app, pair, smtp):
    _, handler = smtp
    case_id, owner, _, specialist_id = pair
    owner.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist_id})
    time.sleep(0.3)
    assert handler.messages == []


def _wait_for_mail(handler, count: int, *, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while len(handler.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_mail_queued_in_a_rolled_back_transaction_is_never_sent(app, make_user, make_case, smtp):
    controller, handler = smtp
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port)
    owner_id = make_user()
    gone, kept = make_user(email="gone@test.huizhen"), make_user(email="kept@test.huizhen")
    case_id = make_case(owner_id)
    with app.app_context():
        owner = db.session.get(User, owner_id)
        notify(users=[db.session.get(User, gone)], case_id=case_id, kind="shared", actor=owner)
        db.session.rollback()
        # A later commit in the same session must not send the rolled-back work's mail.
        db.session.get(User, owner_id).name = "改名"
        db.session.commit()
        # A savepoint rolled back drops only what was queued inside it.
        owner = db.session.get(User, owner_id)
        notify(users=[db.session.get(User, kept)], case_id=case_id, kind="accepted", actor=owner)
        savepoint = db.session.begin_nested()
        notify(users=[db.session.get(User, gone)], case_id=case_id, kind="declined", actor=owner)
        savepoint.rollback()
        db.session.commit()
    _wait_for_mail(handler, 2, seconds=1.5)
    assert [recipients for recipients, _ in handler.messages] == [["kept@test.huizhen"]]


@pytest.mark.parametrize("kind", sorted(TEXTS))
@pytest.mark.parametrize("actor", ["王静怡", "Li / Wang", "a #3 / b"])
def test_the_inbox_shows_each_notification_in_the_page_language(kind, actor):
    """The stored text holds both languages ("中文 / English"); the page shows the one it is in,
    even when the actor's name holds the separator; a text cut at 300 characters is shown whole."""
    zh, en = TEXTS[kind]
    n = Notification(kind=kind, text=f"{zh.format(actor=actor, case=12)} / {en.format(actor=actor, case=12)}")
    assert text_in(n, "zh") == zh.format(actor=actor, case=12)
    assert text_in(n, "en") == en.format(actor=actor, case=12)
    cut = Notification(kind=kind, text=n.text[:20])
    assert text_in(cut, "en") == cut.text
    assert text_in(Notification(kind="retired", text="旧 / old"), "en") == "旧 / old"


def test_a_deactivated_account_is_notified_of_nothing_more(app, make_case_in_progress, make_user, api_as, smtp):
    """An account deactivated (a doctor who left the hospital) kept receiving the case's notices,
    and their mail: who did what on which case, to an address the hospital no longer controls."""
    controller, handler = smtp
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port, MAIL_SENDER="noreply@huizhen.test")
    case_id, ids = make_case_in_progress(users={"left": {"specialty": "radiology", "email": "left@test.huizhen"},
                                                "owner": {"email": "owner@test.huizhen"}},
                                         participants={"left": "radiology"})
    _wait_for_mail(handler, 3)  # the share, the acceptance and the invitation
    admin = api_as(make_user(role="admin"))
    assert admin.patch(f"/api/admin/users/{ids['left']}", json={"active": False}).status_code == 200
    handler.messages.clear()
    r = api_as(ids["consultant"]).post(f"/api/cases/{case_id}/opinion",
                                       json={"diagnosis": "良性", "recommendations": "随访"})
    assert r.status_code == 200
    _wait_for_mail(handler, 2, seconds=1.5)
    assert [recipients for recipients, _ in handler.messages] == [["owner@test.huizhen"]]
    with app.app_context():
        kinds = db.session.scalars(sa.select(Notification.kind).where(Notification.user_id == ids["left"])).all()
    assert kinds == ["invited"]
