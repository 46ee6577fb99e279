"""Two requests racing, made to meet at one chosen point instead of by chance."""

import re
import threading
from contextlib import contextmanager

import sqlalchemy as sa

from app.extensions import db


@contextmanager
def just_before(app, statement: str, make_request, *, wait: float = 2):
    """While inside, run ``make_request`` (another request: its own thread, session and connection)
    right before this thread next executes SQL matching ``statement`` (a regular expression matched
    at the statement's start), waiting for it at most ``wait`` seconds (a correct server may hold it
    back until this thread's request commits). Yields ``(answers, fired)``: what it returned, and
    whether it ran; on leaving, waits for it to finish."""
    answers, fired, me = [], [], threading.get_ident()
    pattern = re.compile(rf"\s*{statement}", re.IGNORECASE)

    def before_execute(conn, cursor, sql, *_args):
        if fired or threading.get_ident() != me or not pattern.match(sql):
            return
        fired.append(threading.Thread(target=lambda: answers.append(make_request())))
        fired[0].start()
        fired[0].join(wait)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before_execute)
    try:
        yield answers, fired
    finally:
        sa.event.remove(engine, "before_cursor_execute", before_execute)
        if fired:
            fired[0].join(30)
