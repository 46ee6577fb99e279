"""The one place outbound Socket.IO events are emitted from."""

from app.extensions import socketio

NAMESPACE = "/consult"


def room_of(case_id: int) -> str:
    """The Socket.IO room of a case."""
    return f"case:{case_id}"


def to_case(event: str, data: dict, case_id: int, *, skip_sid: str | None = None) -> None:
    """Send an event to everyone in a case's room (on every process), optionally not the sender."""
    socketio.emit(event, data, namespace=NAMESPACE, to=room_of(case_id), skip_sid=skip_sid)


def to_sid(event: str, data: dict, sid: str) -> None:
    """Send an event to one connection."""
    socketio.emit(event, data, namespace=NAMESPACE, to=sid)


def presence(case_id: int, online: list[int], version: int) -> None:
    """Tell a room who is in it (``version``: a later list has a higher one; see presence.Snapshot)."""
    to_case("presence", {"case_id": case_id, "online": online, "version": version}, case_id)


def presenter(case_id: int, user_id: int | None, version: int) -> None:
    """Tell a room who presents now (None: nobody; ``version``: a later change has a higher one)."""
    to_case("presenter", {"case_id": case_id, "user_id": user_id, "version": version}, case_id)
