"""Socket.IO handlers of the /consult namespace: verify, check membership, delegate, emit.

Every handler re-checks the caller's access through app.cases.permissions, so a user who lost
access to a case is refused at the next event. They are also pulled out of its room at once
(``recheck_room``, after a participant is removed or the case moves on in its workflow), and a
deactivated account's or revoked token's connections are dropped within
SOCKET_AUTH_RECHECK_SECONDS (``_sweep``). Room changes (messages, annotations) are committed and then broadcast by
app.consult.service, the one owner of that transaction; handlers here only emit what is not
stored (typing, the shared view, presence and the presenter).
"""

import logging
import threading
from functools import wraps

import sqlalchemy as sa
from flask import Flask, current_app, request
from flask_login import current_user
from flask_socketio import join_room, leave_room, rooms

from app.accounts import service as accounts
from app.accounts.models import User
from app.audit import service as audit_log
from app.cases.models import Case
from app.cases.permissions import Action, authorize_case, can
from app.consult import broadcast, presence, service
from app.consult.broadcast import NAMESPACE, room_of
from app.consult.schemas import (
    AnnotationDeleteIn,
    AnnotationIn,
    CaseRef,
    JoinIn,
    MessageIn,
    PresentIn,
    TypingIn,
    ViewerIn,
    message_json,
)
from app.core.errors import DomainError
from app.core.schemas import validate
from app.extensions import db, socketio

log = logging.getLogger(__name__)

# This process's connections: sid -> user id, and sid -> the case rooms it joined.
_users: dict[str, int] = {}
_rooms: dict[str, set[int]] = {}
# The same connections for the sweep: sid -> (app, user id, API token id or None, browser login id
# or None), and the apps sweeping theirs.
_held: dict[str, tuple[Flask, int, int | None, int | None]] = {}
_sweeping: set[Flask] = set()
_lock = threading.Lock()


def _user() -> User | None:
    uid = _users.get(request.sid)
    user = db.session.get(User, uid) if uid is not None else None
    if user is None or not user.active:
        return None
    held = _held.get(request.sid)
    # A revoked or expired token, or a browser login that ended, sends nothing more (one indexed
    # lookup per event).
    if held is not None and held[2] is not None and not accounts.live_tokens(token_ids={held[2]}):
        return None
    if held is not None and held[3] is not None and not accounts.live_login_sessions(session_ids={held[3]}):
        return None
    return user


def _watch(user_id: int, token_id: int | None, login_session_id: int | None) -> None:
    """Remember the connection and make sure this process sweeps its connections."""
    app = current_app._get_current_object()
    with _lock:
        _held[request.sid] = (app, user_id, token_id, login_session_id)
        start = app not in _sweeping
        _sweeping.add(app)
    if start:
        socketio.start_background_task(_sweep, app)


def _sweep(app: Flask) -> None:
    """Disconnect this process's connections whose account was deactivated, whose token was
    revoked or expired, or whose browser login ended (every process runs one).

    Without it such a socket would go on receiving the room's broadcasts (each event it sends is
    refused already); each process checks only the connections it holds, so no cross-process
    bookkeeping is needed.
    """
    while True:
        socketio.sleep(app.config["SOCKET_AUTH_RECHECK_SECONDS"])
        with _lock:
            held = {sid: (uid, tid, lid) for sid, (a, uid, tid, lid) in _held.items() if a is app}
            if not held:
                _sweeping.discard(app)
                return
        try:
            with app.app_context():
                active = accounts.active_user_ids(user_ids={uid for uid, _, _ in held.values()})
                live = accounts.live_tokens(token_ids={tid for _, tid, _ in held.values() if tid is not None})
                logged_in = accounts.live_login_sessions(
                    session_ids={lid for *_, lid in held.values() if lid is not None})
                db.session.remove()
        except Exception:  # noqa: BLE001 - database briefly away: the per-event check still holds
            log.warning("socket access sweep failed; retrying")
            continue
        for sid, (user_id, token_id, login_id) in held.items():
            if user_id not in active or (token_id is not None and token_id not in live) or \
                    (login_id is not None and login_id not in logged_in):
                socketio.server.disconnect(sid, namespace=NAMESPACE)


def _case_id(data) -> int:
    if not isinstance(data, dict):
        raise DomainError("payload must be an object", status=400)
    # Validated, not int(): 1.5 is not case 1, and an id past the database's range is a 400.
    return validate(CaseRef, data).case_id


def handler(action: Action, *, joined: bool = False, relayed: bool = False):
    """Wrap an event handler: the caller must be connected and allowed ``action`` on the case.

    ``joined``: the connection must also be in the case's room (events about being in the room:
    typing, the shared view, the presenter). ``relayed``: an event relayed to the room and stored
    nowhere (typing, the shared view), of which a user may send SOCKET_RELAY_EVENTS_PER_SECOND.
    The handler gets (user, case, data); its return value is the ack. Errors become
    ``{"ok": false, "error", "detail"}`` acks; denials are audited like HTTP ones.
    """

    def decorate(fn):
        @wraps(fn)
        def wrapper(data=None):
            if relayed and _relayed_too_often():
                limit = current_app.extensions["relay_limiter"].limit
                return {"ok": False, "error": "too many typing and viewer events",
                        "detail": f"at most {limit} a second; this one was not relayed"}
            user = _user()
            if user is None:
                return {"ok": False, "error": "authentication required"}
            if _refused_too_often(user.id):
                # Refused at once, neither checked nor audited (new connections are refused too).
                return {"ok": False, "error": "too many refused requests; try again in a minute"}
            try:
                case = authorize_case(user, _case_id(data), action, audit=f"socket.{fn.__name__}")
                if joined and not _in_room(case.id):
                    raise DomainError("join the case room first", status=409)
                return fn(user, case, data)
            except DomainError as exc:
                db.session.rollback()
                if exc.status in (403, 404):
                    _count_refusal(user.id)
                ack = {"ok": False, "error": exc.error}
                if exc.detail is not None:
                    ack["detail"] = exc.detail
                return ack

        return wrapper

    return decorate


def _in_room(case_id: int) -> bool:
    """Whether the sending connection is in the case's Socket.IO room now.

    Read from the server's rooms, not from ``_rooms``: a connection pulled out of the room on losing
    access (``_pull_out_who_lost_access``, on whichever process ran it) leaves the room itself, and
    must join again, with a fresh check, before it acts in it.
    """
    return room_of(case_id) in rooms(request.sid, namespace=NAMESPACE)


def _relayed_too_often() -> bool:
    """Count a relayed event of the sending connection's user; whether it is past their bound.

    Checked before anything else (by the user id this process holds for the connection, no query):
    a flood costs neither the database nor the room. Per user, not per connection, so a client
    opening more connections gets no more; per process, so no store is shared.
    """
    user_id = _users.get(request.sid)
    return user_id is not None and not current_app.extensions["relay_limiter"].allow(user_id)


def _count_refusal(user_id: int) -> None:
    current_app.extensions["socket_refusals"].note(user_id)


def _refused_too_often(user_id: int) -> bool:
    """Whether the user had SOCKET_REFUSALS_PER_MINUTE refused events in the last minute."""
    return current_app.extensions["socket_refusals"].exceeded(user_id)


@socketio.on("connect", namespace=NAMESPACE)
def on_connect(auth=None):
    """Authenticate a connection: an API token in ``auth``, or the browser's login session."""
    user = None
    token = auth.get("token") if isinstance(auth, dict) else None
    token_id = login_session_id = None
    if token:
        found = accounts.user_for_token(token)
        user, token_id = (found[0], found[1].id) if found else (None, None)
    elif current_user.is_authenticated:
        user = current_user._get_current_object()
        login_session_id = user.login_session_id  # the browser login whose cookie opened the connection
    if user is None:
        raise ConnectionRefusedError("authentication required")
    if _refused_too_often(user.id):
        raise ConnectionRefusedError("too many refused requests; try again in a minute")
    with _lock:
        _users[request.sid] = user.id
        _rooms[request.sid] = set()
    _watch(user.id, token_id, login_session_id)
    return True


@socketio.on("disconnect", namespace=NAMESPACE)
def on_disconnect(*args):
    """Drop the connection from every room it was in (also after an abrupt loss)."""
    with _lock:
        _users.pop(request.sid, None)
        rooms = _rooms.pop(request.sid, set())
        _held.pop(request.sid, None)
    for case_id in rooms:
        _left(case_id, request.sid)


def _left(case_id: int, sid: str) -> None:
    left, presenter_ended = presence.depart(case_id=case_id, sid=sid)
    if presenter_ended is not None:
        broadcast.presenter(case_id, None, presenter_ended)
    broadcast.presence(case_id, *left)


@socketio.on("join", namespace=NAMESPACE)
@handler(Action.CHAT)
def join(user, case, data):
    """Join a case room: the ack carries the messages after ``since`` (``more``: a page of them, ask
    GET /messages for the rest), who is online and the viewer."""
    since = validate(JoinIn, data).since
    join_room(room_of(case.id))
    with _lock:
        _rooms.setdefault(request.sid, set()).add(case.id)
    store = presence.store()
    case_id, user_id = case.id, user.id
    joined = store.join(case_id, request.sid, user_id)
    with _lock:
        closed = request.sid not in _users
        if closed:
            _rooms.pop(request.sid, None)
    if closed:
        # The connection closed while this join ran, and its disconnect found nothing to leave:
        # without this the dead connection would stay online in the room for good.
        leave_room(room_of(case_id))
        _left(case_id, request.sid)
        return {"ok": False, "error": "the connection closed"}
    # Checked again now that the connection is in the room: a removal committed since the check
    # above ran its pull-out (_pull_out_who_lost_access) before this join was there to be seen, and
    # would have left the removed user listening. Either that pull-out sees this entry, or this
    # check sees the removal. Rolled back first, so the check reads what is committed now.
    db.session.rollback()
    try:
        case = authorize_case(user, case_id, Action.CHAT, audit="socket.join")
    except DomainError:
        _leave(case_id)
        raise
    messages, more = service.messages_since(case=case, since=since)
    audit_log.record_once(key=("join", user.id, case.id, request.sid), user_id=user.id, case_id=case.id,
                          action="socket.join")
    broadcast.presence(case.id, *joined)
    ended = presence.end_absent_presenter(case.id, joined.online)  # one whose server process died
    if ended is not None:
        broadcast.presenter(case.id, None, ended)
    presenter, presenter_version, view = presence.presenter_and_view(case.id)
    return {"ok": True, "messages": [message_json(m) for m in messages], "more": more,
            "online": joined.online, "online_version": joined.version,
            "presenter": presenter, "presenter_version": presenter_version, "viewer": view}


@socketio.on("leave", namespace=NAMESPACE)
def leave(data=None):
    """Leave a case room."""
    try:
        case_id = _case_id(data)
    except DomainError as exc:
        return {"ok": False, "error": exc.error}
    _leave(case_id)
    return {"ok": True}


def _leave(case_id: int) -> None:
    """Take the sending connection out of the case's room: Socket.IO's, this process's record, presence."""
    leave_room(room_of(case_id))
    with _lock:
        joined = case_id in _rooms.get(request.sid, set())
        _rooms.get(request.sid, set()).discard(case_id)
    if joined:
        _left(case_id, request.sid)


@socketio.on("message", namespace=NAMESPACE)
@handler(Action.CHAT)
def message(user, case, data):
    """Persist a chat message, then broadcast ``message`` to the room; ack with its seq."""
    msg, new = service.post_message(case=case, author=user, data=validate(MessageIn, data))
    return {"ok": True, "seq": msg["seq"], "duplicate": not new}


@socketio.on("typing", namespace=NAMESPACE)
@handler(Action.CHAT, joined=True, relayed=True)
def typing(user, case, data):
    """Tell the others in the room that the sender is (or stopped) typing."""
    typing = validate(TypingIn, data).typing
    broadcast.to_case("typing", {"case_id": case.id, "user_id": user.id, "name": user.name, "typing": typing},
                      case.id, skip_sid=request.sid)
    return {"ok": True}


@socketio.on("viewer", namespace=NAMESPACE)
@handler(Action.VIEW, joined=True, relayed=True)
def viewer(user, case, data):
    """Share the sender's view (series, slice, window, zoom/pan) with the others in the room."""
    sid = request.sid
    presence.share_view(case_id=case.id, user_id=user.id, view=validate(ViewerIn, data).state(),
                        relay=lambda state: broadcast.to_case("viewer", state, case.id, skip_sid=sid))
    return {"ok": True}


@socketio.on("present", namespace=NAMESPACE)
@handler(Action.CHAT, joined=True)
def present(user, case, data):
    """Take, release or hand over the presenter role; broadcast ``presenter``."""
    body = validate(PresentIn, data)
    new, version = presence.present(case_id=case.id, user_id=user.id, action=body.action, target=body.user_id)
    broadcast.presenter(case.id, new, version)
    return {"ok": True, "presenter": new, "presenter_version": version}


@socketio.on("annotate", namespace=NAMESPACE)
@handler(Action.CHAT)
def annotate(user, case, data):
    """Persist an annotation on an instance frame, then broadcast ``annotation``."""
    return {"ok": True, "annotation": service.add_annotation(case=case, author=user,
                                                             data=validate(AnnotationIn, data))}


@socketio.on("annotation_delete", namespace=NAMESPACE)
@handler(Action.CHAT)
def annotation_delete(user, case, data):
    """Delete one's own annotation; broadcast ``annotation_deleted``."""
    service.delete_annotation(case=case, user=user, annotation_id=validate(AnnotationDeleteIn, data).id)
    return {"ok": True}


def recheck_room(app, *, case_id: int, **_) -> None:
    """Pull out of the case's room (on any process, at once) everyone who may no longer chat there.

    Connected to the signals sent after a commit that may have taken someone's access: a
    participant removed, the case declined, returned to its pool, rerouted or otherwise moved on.
    The signal comes inside the commit, where the session can read nothing more: the check runs
    in a task of its own.
    """
    socketio.start_background_task(_recheck_room, app, case_id)


def _recheck_room(app: Flask, case_id: int) -> None:
    with app.app_context():
        try:
            _pull_out_who_lost_access(case_id)
        except Exception as exc:  # noqa: BLE001 - the per-event check still refuses them
            # The type only, as the app's error handler: a message may carry data.
            log.error("rechecking the room of case %s failed: %s", case_id, type(exc).__name__)
        finally:
            db.session.remove()


def _pull_out_who_lost_access(case_id: int) -> None:
    store = presence.store()
    online = store.online(case_id)
    if not online:
        return
    case = db.session.get(Case, case_id)
    users = {u.id: u for u in db.session.scalars(sa.select(User).where(User.id.in_(online)))}
    gone = [uid for uid in online
            if case is None or uid not in users or not users[uid].active or not can(users[uid], case, Action.CHAT)]
    for user_id in gone:
        for sid in store.sids_of(case_id, user_id):
            broadcast.to_sid("removed", {"case_id": case_id}, sid)
            socketio.server.leave_room(sid, room_of(case_id), namespace=NAMESPACE)
            _, presenter_ended = presence.depart(case_id=case_id, sid=sid)
            if presenter_ended is not None:
                broadcast.presenter(case_id, None, presenter_ended)
    if gone:
        broadcast.presence(case_id, *store.snapshot(case_id))
