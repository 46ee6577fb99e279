"""The pool of worker processes that prepares uploaded DICOM files, one pool per server process.

Parsing, validating, de-identifying and laying out a file is pure CPU work in Python; in the
server's own process it holds the GIL, so a 2-core machine used one core for ingest. The pool
is started on the first upload (INGEST_WORKERS processes; 0 prepares in the request thread).
Workers come from a fork server, never forked from the threaded server itself: a fork copies
whatever locks the server's other threads hold at that instant.
"""

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_owner_pid: int | None = None


def get_pool(size: int) -> ProcessPoolExecutor | None:
    """Return this process's pool of ``size`` workers, starting it on first use; None if size is 0."""
    global _pool, _owner_pid
    if size <= 0:
        return None
    with _lock:
        # A pool belongs to the process that made it (a forked server process makes its own).
        if _pool is None or _owner_pid != os.getpid():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["app.imaging.ingest"])
            _pool, _owner_pid = ProcessPoolExecutor(max_workers=size, mp_context=context), os.getpid()
        return _pool


def discard_pool(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (a worker died) so that the next file starts a fresh one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)
