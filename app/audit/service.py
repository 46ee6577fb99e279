"""Recording and reading the audit log; the one helper every case route goes through.

Every row is written synchronously, in its own transaction (kept even if the request fails).
Reads that repeat are aggregated rather than queued: :func:`record_once` writes the first of a
run of identical accesses and skips the repeats within its window — rendered frames and DICOMweb
frame reads per caller, case and series for 30 minutes; DICOMweb (QIDO) searches per caller, case,
search and query string for :data:`SEARCH_AGGREGATE_SECONDS`. A denial is never aggregated. This
was chosen over writing rows from a background queue (which would lose the last rows of a killed
process and make rows lag their requests) and over writing in the request's own transaction (the
commit, the costly part, stays); on the DICOMweb benchmark the audit commit was the largest
single cost of a search (docs/BENCHMARKS.md).
"""

import csv
import io
import json
import threading
import time
from collections.abc import Iterator

import sqlalchemy as sa
from flask import current_app, has_request_context, request

from app.audit.models import AuditEvent
from app.core.errors import DomainError
from app.core.spreadsheet import safe_cell
from app.core.time import isoformat
from app.extensions import db

# Rendered-frame views are logged once per user, case and series per window, not per frame.
AGGREGATE_SECONDS = 30 * 60
# Identical searches (same caller, case, search and query string) are logged once per minute.
SEARCH_AGGREGATE_SECONDS = 60
_recent_lock = threading.Lock()


def _client() -> tuple[str | None, str | None]:
    if not has_request_context():
        return None, None
    # A client's own text: PostgreSQL cannot store a NUL in it (the row, and the request, would fail).
    return request.remote_addr, (request.user_agent.string or "").replace("\x00", "")[:300]


def record(*, user_id: int | None, action: str, case_id: int | None = None, status: int = 200,
           detail: dict | None = None) -> None:
    """Add an audit row in its own transaction, so it is kept even if the request fails."""
    ip, agent = _client()
    row = {"user_id": user_id, "case_id": case_id, "action": action, "status": status, "detail": detail,
           "ip": ip, "user_agent": agent}
    with db.engine.begin() as conn:
        conn.execute(sa.insert(AuditEvent).values(**row))


class TooManyRefusals(DomainError):
    status = 429
    error = "too many refused requests"


# The statuses of a refused request (not found, or not the caller's): each is audited, up to a limit.
REFUSED = (403, 404)


def record_refusal(*, user_id: int | None, action: str, status: int, case_id: int | None = None,
                   detail: dict | None = None) -> None:
    """Audit a refused request, or raise TooManyRefusals (429, unaudited) past the caller's limit.

    At most HTTP_REFUSALS_PER_MINUTE refusals per user (per client address when there is no user,
    e.g. a share link's token) are written a minute: each is a row and a commit, and a client probing
    case ids or tokens would otherwise add them without bound, burying the real accesses. Past the
    limit the refusal is answered 429 instead, so the prober learns nothing more; requests the caller
    may make are served as before. The socket side has its own limit (SOCKET_REFUSALS_PER_MINUTE).
    """
    key = ("user", user_id) if user_id is not None else ("address", request.remote_addr if has_request_context()
                                                         else None)
    if not current_app.extensions["http_refusals"].allow(key):
        raise TooManyRefusals(detail="try again in a minute")
    record(user_id=user_id, action=action, case_id=case_id, status=status, detail=detail)


def record_outcome(*, user_id: int | None, action: str, status: int, case_id: int | None = None,
                   detail: dict | None = None) -> None:
    """Audit a request's outcome: a refusal (REFUSED) through record_refusal and its limit, anything else
    with record."""
    write = record_refusal if status in REFUSED else record
    write(user_id=user_id, action=action, case_id=case_id, status=status, detail=detail)


def record_once(*, key: tuple, window: float = AGGREGATE_SECONDS, **kwargs) -> None:
    """Record unless the same key was recorded within the window (seconds)."""
    now = time.monotonic()
    # One memo per app: ids are only unique within one database, and one process may hold several
    # apps (tests, or an app rebuilt over an emptied database), so a module-level memo would
    # swallow the first record for ids it saw elsewhere.
    _recent: dict[tuple, float] = current_app.extensions.setdefault("audit_recent", {})
    with _recent_lock:
        seen = _recent.get(key)
        if seen is not None and now - seen[0] < seen[1]:
            return
        _recent[key] = (now, window)
        if len(_recent) > 50_000:  # keep the memo bounded
            for old in [k for k, (t, w) in _recent.items() if now - t >= w]:
                del _recent[old]
    record(**kwargs)


def case_events(case_id: int) -> list[AuditEvent]:
    """Return a case's audit rows, oldest first."""
    return list(db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)))


def event_json(e: AuditEvent) -> dict:
    """Serialise an audit row."""
    return {"at": isoformat(e.at), "user_id": e.user_id, "action": e.action, "status": e.status,
            "detail": e.detail, "ip": e.ip, "user_agent": e.user_agent, "case_id": e.case_id}


CSV_FIELDS = ("id", "at", "user_id", "case_id", "action", "status", "ip", "user_agent", "detail")


def export_csv(rows_per_chunk: int = 1000) -> Iterator[str]:
    """Yield the whole audit log as CSV, a chunk of rows at a time: detail as JSON, every cell safe to open in
    a spreadsheet. The log grows with every access, so it is never held in memory whole."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for n, e in enumerate(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))
                          .yield_per(rows_per_chunk), start=1):
        detail = None if e.detail is None else json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
        writer.writerow([safe_cell(v) for v in (e.id, isoformat(e.at), e.user_id, e.case_id, e.action, e.status,
                                               e.ip, e.user_agent, detail)])
        if n % rows_per_chunk == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
