"""Messages and annotations of a room: each change is committed here, then broadcast from here.

Who commits: in consult the service owns the transaction. Each function that changes the room
commits and then, only then, broadcasts the event (persist, then broadcast), so the socket
handlers and the HTTP routes, which both call it, neither commit nor emit room events themselves.
"""

import math

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case
from app.cases.permissions import Action, require_ids
from app.consult import broadcast
from app.consult.models import Annotation, Message, MessageCounter
from app.consult.schemas import AnnotationIn, MessageIn, annotation_json, message_json
from app.core.errors import DomainError, Forbidden, NotFound
from app.core.ratelimit import RateLimiter
from app.core.time import utcnow
from app.extensions import db
from app.imaging import service as imaging
from app.imaging.models import Instance


class TooManyMessages(DomainError):
    status = 429
    error = "too many messages"


def _limiter() -> RateLimiter:
    from flask import current_app

    return current_app.extensions["message_limiter"]


def post_message(*, case: Case, author: User, data: MessageIn) -> tuple[dict, bool]:
    """Store a message with the case's next seq, then broadcast ``message``; return it and whether it is new.

    A resend with the same client_id returns the first message's payload and broadcasts nothing.
    """
    existing = _by_client_id(case.id, author.id, data.client_id)
    if existing is not None:
        return message_json(existing), False
    if data.image_ref is not None:
        imaging.check_image_refs(case, [data.image_ref])  # the link under the message must open an image
    limiter = _limiter()
    if not limiter.allow(author.id):
        raise TooManyMessages(detail=f"at most {limiter.limit} messages in {limiter.window:.0f} seconds")
    try:
        seq = _next_seq(case.id)  # first: on SQLite this write takes the lock the check below needs
        # Checked again in this transaction, under the case row's lock that a removal takes too: an
        # author removed (or a case moved on) since the handler's check is refused here, and one
        # removed after this is removed after the message is stored.
        require_ids(author.id, case.id, Action.CHAT, lock=True)
        message = Message(case_id=case.id, seq=seq, author_id=author.id, client_id=data.client_id,
                          body=data.body, image_ref=data.image_ref.model_dump(exclude_defaults=True)
                          if data.image_ref else None)
        db.session.add(message)
        db.session.flush()
        payload = message_json(message)  # before commit, which would expire it and cost a reload
        db.session.commit()
    except sa.exc.IntegrityError:
        # The same client_id raced itself (two resends at once): the first one stands.
        db.session.rollback()
        existing = _by_client_id(case.id, author.id, data.client_id)
        if existing is None:
            raise
        return message_json(existing), False
    # payload["case_id"], not case.id: the commit expired ``case``, and reading it would cost a
    # SELECT (and a second pooled connection) on every message.
    broadcast.to_case("message", payload, payload["case_id"])
    return payload, True


def _by_client_id(case_id: int, author_id: int, client_id: str) -> Message | None:
    return db.session.scalar(sa.select(Message).where(
        Message.case_id == case_id, Message.author_id == author_id, Message.client_id == client_id))


def _next_seq(case_id: int) -> int:
    # One UPDATE … RETURNING takes the row lock on PostgreSQL (the write lock on SQLite), so
    # concurrent senders in any number of processes get consecutive, unique numbers.
    stmt = (sa.update(MessageCounter).where(MessageCounter.case_id == case_id)
            .values(last_seq=MessageCounter.last_seq + 1).returning(MessageCounter.last_seq))
    seq = db.session.execute(stmt).scalar()
    if seq is None:
        try:
            with db.session.begin_nested():
                db.session.add(MessageCounter(case_id=case_id, last_seq=0))
        except sa.exc.IntegrityError:
            pass  # created by a concurrent sender
        seq = db.session.execute(stmt).scalar()
    return seq


MESSAGES_PAGE = 1000


def messages_since(*, case: Case, since: int = 0, limit: int = MESSAGES_PAGE) -> tuple[list[Message], bool]:
    """Return the case's first ``limit`` messages with seq > since, in order, and whether more follow.

    A reader asks again with the last seq it got as ``since`` while there are more.
    """
    rows = list(db.session.scalars(sa.select(Message).where(Message.case_id == case.id, Message.seq > since)
                                   .order_by(Message.seq).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


# ---- annotations ----------------------------------------------------------------------------

def _length_mm(instance: Instance, points) -> float | None:
    if len(points) != 2 or not instance.pixel_spacing:
        return None
    row_mm, col_mm = (float(v) for v in instance.pixel_spacing.split("\\")[:2])
    (x0, y0), (x1, y1) = points
    length = math.hypot((x1 - x0) * col_mm, (y1 - y0) * row_mm)
    # A huge (finite) spacing can still overflow: an infinite length is sent as ``Infinity``, which
    # no browser's JSON parser reads. Such a line is shown unmeasured, like one without a spacing.
    return round(length, 2) if math.isfinite(length) else None


def add_annotation(*, case: Case, author: User, data: AnnotationIn) -> dict:
    """Store a mark on an instance frame, then broadcast ``annotation``; return its payload.

    A line gets its length in mm from PixelSpacing.
    """
    instance = db.session.scalar(sa.select(Instance).where(
        Instance.case_id == case.id, Instance.sop_instance_uid == data.sop_instance_uid))
    if instance is None:
        raise NotFound("instance not found")
    if data.frame > instance.frames:
        raise DomainError("frame out of range", {"frame": data.frame, "frames": instance.frames}, status=400)
    needed = 1 if data.kind == "text" else 2
    if len(data.points) != needed:
        raise DomainError(f"a {data.kind} needs {needed} point(s)", status=400)
    if data.kind == "text" and not data.text:
        raise DomainError("a text annotation needs its text", status=400)  # else an invisible mark
    points = [list(p) for p in data.points]
    annotation = Annotation(case_id=case.id, sop_instance_uid=data.sop_instance_uid, frame=data.frame,
                            kind=data.kind, points=points, text=data.text, author_id=author.id,
                            length_mm=_length_mm(instance, points) if data.kind == "line" else None)
    db.session.add(annotation)
    db.session.flush()  # first: on SQLite this write takes the lock the check below needs
    require_ids(author.id, case.id, Action.CHAT, lock=True)  # again, as post_message does
    db.session.commit()
    payload = annotation_json(annotation)
    broadcast.to_case("annotation", payload, payload["case_id"])
    return payload


def annotations(*, case: Case, sop_instance_uid: str | None = None) -> list[Annotation]:
    """Return the case's live annotations (of one instance if asked)."""
    stmt = sa.select(Annotation).where(Annotation.case_id == case.id, Annotation.deleted_at.is_(None))
    if sop_instance_uid:
        stmt = stmt.where(Annotation.sop_instance_uid == sop_instance_uid)
    return list(db.session.scalars(stmt.order_by(Annotation.id)))


def delete_annotation(*, case: Case, user: User, annotation_id: int) -> None:
    """Delete an annotation (only its author may), then broadcast ``annotation_deleted``."""
    a = db.session.scalar(sa.select(Annotation).where(
        Annotation.id == annotation_id, Annotation.case_id == case.id, Annotation.deleted_at.is_(None)))
    if a is None:
        raise NotFound("annotation not found")
    if a.author_id != user.id:
        raise Forbidden("only the author may delete an annotation")
    a.deleted_at = utcnow()
    case_id = a.case_id
    db.session.commit()
    broadcast.to_case("annotation_deleted", {"case_id": case_id, "id": annotation_id}, case_id)
