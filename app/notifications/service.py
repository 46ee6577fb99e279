"""Creating notifications, reading the inbox, and mailing them when MAIL_SERVER is configured.

Emails carry the case number and what happened, never the title or any clinical content: mail
leaves our control, so the doctor follows the link and logs in to see the case.
"""

import logging
import re
import smtplib
import threading
from email.message import EmailMessage

import sqlalchemy as sa
from flask import current_app

from app.accounts.models import User
from app.core.errors import NotFound
from app.core.signals import after_commit
from app.core.time import utcnow
from app.extensions import db
from app.notifications.models import Notification

log = logging.getLogger(__name__)

# kind: (Chinese, English) text, formatted with case id and actor name
TEXTS = {
    "shared": ("{actor} 邀请您会诊病例 #{case}", "{actor} asks for your opinion on case #{case}"),
    "accepted": ("{actor} 已接受病例 #{case} 的会诊", "{actor} accepted case #{case}"),
    "declined": ("{actor} 婉拒了病例 #{case} 的会诊", "{actor} declined case #{case}"),
    "invited": ("{actor} 邀请您参加病例 #{case} 的多学科会诊", "{actor} invited you to case #{case}"),
    "removed": ("您已不再参与病例 #{case}", "You were removed from case #{case}"),
    "question": ("{actor} 对病例 #{case} 提出了问题", "{actor} asked a question on case #{case}"),
    "answered_question": ("{actor} 回答了病例 #{case} 的问题", "{actor} answered the question on case #{case}"),
    "opinion_signed": ("病例 #{case} 的会诊意见已签发", "The opinion on case #{case} is signed"),
    "opinion_amended": ("病例 #{case} 的会诊意见已修订", "The opinion on case #{case} was amended"),
    "closed": ("病例 #{case} 已结案", "Case #{case} was closed"),
    "withdrawn": ("病例 #{case} 已撤回", "Case #{case} was withdrawn"),
    "pool_queued": ("病例 #{case} 进入分诊队列，等待分派", "Case #{case} is waiting in your triage queue"),
    "assigned": ("{actor} 为您分派了病例 #{case} 的会诊", "{actor} assigned case #{case} to you"),
    "follow_up": ("病例 #{case} 结案已满30天：{actor} 的建议是否已采纳？",
                  "Case #{case} closed 30 days ago: was {actor}'s advice followed?"),
    "routed": ("病例 #{case} 的分诊有新进展（{actor}）", "Case #{case} was routed by {actor}"),
    "dicom_received": ("病例 #{case} 经 {actor} 收到影像", "Case #{case} received images over {actor}"),
    "teaching_proposed": ("{actor} 提议将病例 #{case} 收入教学病例库，请您同意或拒绝",
                          "{actor} proposes case #{case} for the teaching collection: agree or refuse"),
    # From a blinded peer review: the proposer may be the reviewer, so no name.
    "teaching_proposed_review": ("病例 #{case} 的同行评议分歧被提议收入教学病例库，请您同意或拒绝",
                                 "A peer-review disagreement on case #{case} is proposed for the teaching "
                                 "collection: agree or refuse"),
}


def _pattern(template: str, named: set[str]) -> str:
    # The template's words literally, its {actor} and {case} as groups: named the first time, then
    # back-references, so that both languages must name the same actor and case.
    out = []
    for part in re.split(r"(\{actor\}|\{case\})", template):
        name = part[1:-1] if part in ("{actor}", "{case}") else None
        if name is None:
            out.append(re.escape(part))
        elif name in named:
            out.append(f"(?P={name})")
        else:
            named.add(name)
            out.append(f"(?P<{name}>" + (r"\d+" if name == "case" else ".+?") + ")")
    return "".join(out)


def text_in(notification: Notification, lang: str) -> str:
    """The notification's text in one language (its stored text holds both, "中文 / English"); the
    stored text when it is not of its kind's shape (cut at 300 characters, or of a retired kind)."""
    if notification.kind not in TEXTS:
        return notification.text
    zh, en = TEXTS[notification.kind]
    named: set[str] = set()
    found = re.fullmatch(f"(?P<zh>{_pattern(zh, named)}) / (?P<en>{_pattern(en, named)})",
                         notification.text, re.DOTALL)
    return found["en" if lang == "en" else "zh"] if found else notification.text


def notify(*, users: list[User], case_id: int, kind: str, actor: User | None) -> list[Notification]:
    """Add a notification for each active user (never the actor; None is the DICOM listener) and queue
    the emails. A deactivated account is told nothing more: it can act on nothing, and its address may
    no longer be the doctor's (who left the hospital)."""
    zh, en = TEXTS[kind]
    name, actor_id = (actor.name, actor.id) if actor is not None else ("DICOM", None)
    text = f"{zh.format(actor=name, case=case_id)} / {en.format(actor=name, case=case_id)}"
    created = []
    for user in {u.id: u for u in users if u is not None and u.id != actor_id and u.active}.values():
        n = Notification(user_id=user.id, case_id=case_id, kind=kind, text=text[:300])
        db.session.add(n)
        created.append(n)
        _mail_later(user.email, case_id, text)
    return created


def _mail_later(address: str, case_id: int, text: str) -> None:
    cfg = current_app.config
    if not cfg.get("MAIL_SERVER"):
        return
    settings = {k: cfg.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_USERNAME", "MAIL_PASSWORD",
                                         "MAIL_USE_TLS", "MAIL_SENDER", "PUBLIC_URL")}
    # Sent after the request has committed (never for work rolled back), off the request thread,
    # so a slow mail server never delays a doctor's click; failures are logged, not raised.
    after_commit(_send_in_background, settings, address, case_id, text)


def _send_in_background(settings: dict, address: str, case_id: int, text: str) -> None:
    threading.Thread(target=_send, args=(settings, address, case_id, text), daemon=True).start()


def _send(settings: dict, address: str, case_id: int, text: str) -> None:
    msg = EmailMessage()
    msg["Subject"] = f"[会诊 Huizhen] #{case_id}"
    msg["From"] = settings["MAIL_SENDER"]
    msg["To"] = address
    link = f"{(settings.get('PUBLIC_URL') or '').rstrip('/')}/cases/{case_id}"
    msg.set_content(f"{text}\n\n{link}\n")
    try:
        with smtplib.SMTP(settings["MAIL_SERVER"], int(settings["MAIL_PORT"] or 25), timeout=10) as smtp:
            if settings.get("MAIL_USE_TLS"):
                smtp.starttls()
            if settings.get("MAIL_USERNAME"):
                smtp.login(settings["MAIL_USERNAME"], settings["MAIL_PASSWORD"] or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("notification email for case %s not sent: %s", case_id, type(exc).__name__)


def inbox(*, user: User, unread_only: bool = False, limit: int = 100) -> list[Notification]:
    """Return the user's notifications, newest first."""
    stmt = sa.select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Notification.id.desc()).limit(limit)))


def unread_count(*, user: User) -> int:
    """Return how many notifications the user has not read."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def mark_read(*, user: User, notification_id: int | None = None) -> int:
    """Mark one (or, with no id, every) notification of the user read; return how many changed."""
    stmt = sa.update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if notification_id is not None:
        exists = db.session.scalar(sa.select(Notification.id).where(
            Notification.id == notification_id, Notification.user_id == user.id))
        if exists is None:
            raise NotFound("notification not found")
        stmt = stmt.where(Notification.id == notification_id)
    return db.session.execute(stmt.values(read_at=utcnow())).rowcount
