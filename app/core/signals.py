"""Work that must happen only once the change it announces is committed: signals and mail.

A domain that must tell another about a change (a participant removed → the realtime room drops
them) queues its blinker signal with ``send_after_commit`` inside the transaction; notification
mail is queued the same way with ``after_commit``. What was queued runs after the commit, or never
if the transaction (or the savepoint it was queued in) is rolled back, so no route has to remember
to send it and nobody hears of work that did not happen.
"""

from collections.abc import Callable

from blinker import Signal
from flask import Flask, current_app
from sqlalchemy import event, orm

from app.extensions import db

_QUEUE = "after_commit"


def after_commit(callback: Callable, *args, **kwargs) -> None:
    """Call ``callback(*args, **kwargs)`` once the current transaction commits (never if it rolls back)."""
    session = db.session()
    # Each item remembers the transaction it was queued in, so rolling back a savepoint drops it.
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_QUEUE, []).append((transaction, callback, args, kwargs))


def send_after_commit(signal: Signal, **kwargs) -> None:
    """Send ``signal`` (with the app as sender) once the current transaction commits."""
    after_commit(signal.send, current_app._get_current_object(), **kwargs)


def _run_queued(session) -> None:
    for _, callback, args, kwargs in session.info.pop(_QUEUE, []):
        callback(*args, **kwargs)


def _drop_rolled_back(session, rolled_back) -> None:
    pending = session.info.get(_QUEUE)
    if pending:
        session.info[_QUEUE] = [item for item in pending if not _queued_in(item[0], rolled_back)]


def _queued_in(transaction, rolled_back) -> bool:
    while transaction is not None:
        if transaction is rolled_back:
            return True
        transaction = transaction.parent
    return rolled_back.parent is None  # the outermost rollback leaves nothing to run


def init_app(app: Flask) -> None:
    """Run queued work after every commit and drop what a rollback undid."""
    for name, listener in (("after_commit", _run_queued), ("after_soft_rollback", _drop_rolled_back)):
        if not event.contains(orm.Session, name, listener):
            event.listen(orm.Session, name, listener)
