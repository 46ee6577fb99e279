"""A client probing case ids over the socket is cut off before it floods the audit log."""

import pytest
import socketio
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.extensions import db
from tests.consult.test_room import joined


@pytest.fixture
def app_overrides():
    return {"SOCKET_REFUSALS_PER_MINUTE": 5}


def test_too_many_refused_events_drop_the_connection_and_stop_auditing(app, live, mdt, clients):
    case_id, ids, tokens = mdt
    prober = clients(live.url, tokens["outsider"]).connect()
    acks = [prober.call("join", {"case_id": 900_000 + i}) for i in range(5)]
    assert [a["error"] for a in acks] == ["case not found"] * 5  # each refusal audited, as over HTTP
    for _ in range(3):  # refused at once, whatever the case, and not audited
        assert prober.call("join", {"case_id": case_id}) == {
            "ok": False, "error": "too many refused requests; try again in a minute"}
    with pytest.raises(socketio.exceptions.ConnectionError):  # nor can it come straight back
        clients(live.url, tokens["outsider"]).connect()
    with app.app_context():
        refused = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.user_id == ids["outsider"], AuditEvent.action == "socket.join"))
    assert refused == 5
    # Others go on as before.
    owner, ack = joined(clients, live, tokens["owner"], case_id)
    assert ack["ok"] is True
