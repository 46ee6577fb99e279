"""Cross-domain signals that are sent only once the change they announce is committed.

A domain that must tell another about a change (a participant removed → the realtime room drops
them) queues its blinker signal with ``send_after_commit`` inside the transaction; the signal goes
out after the commit, or never if the transaction is rolled back, so no route has to remember to
send it and no receiver hears of work that did not happen.
"""

from blinker import Signal
from flask import Flask, current_app
from sqlalchemy import event, orm

from app.extensions import db

_QUEUE = "signals_after_commit"


def send_after_commit(signal: Signal, **kwargs) -> None:
    """Send ``signal`` (with the app as sender) once the current transaction commits."""
    db.session.info.setdefault(_QUEUE, []).append((signal, current_app._get_current_object(), kwargs))


def _send_queued(session) -> None:
    for signal, app, kwargs in session.info.pop(_QUEUE, []):
        signal.send(app, **kwargs)


def _drop_queued(session, transaction) -> None:
    # The outermost transaction ended without a commit (after_commit already emptied the queue
    # otherwise): what was queued in it did not happen.
    if transaction.parent is None:
        session.info.pop(_QUEUE, None)


def init_app(app: Flask) -> None:
    """Send queued signals after every commit and drop them when the transaction ends otherwise."""
    for name, listener in (("after_commit", _send_queued), ("after_transaction_end", _drop_queued)):
        if not event.contains(orm.Session, name, listener):
            event.listen(orm.Session, name, listener)
