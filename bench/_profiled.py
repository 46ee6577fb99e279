"""Run a server under cProfile, one profile per request, merged: ``python bench/_profiled.py OUT run.py``.

``python bench/_profiled.py OUT -m gunicorn -c gunicorn.conf.py`` profiles gunicorn's threaded
worker the same way. Each request is profiled in the thread that serves it, from the first byte
read to the last byte written (werkzeug's ``handle_one_request``, gunicorn's ``ThreadWorker.handle``),
so the server's own parsing and writing are counted with the app; times are the thread's CPU time.
The merged statistics are written to OUT (pstats format) every 50 requests.
Used by ``bench/dicomweb_cost.py --profile``.
"""

import cProfile
import os
import pstats
import runpy
import sys
import threading
import time

_lock = threading.Lock()
_stats: list[pstats.Stats] = []
_count = [0]


def _profiled(method, out: str):
    def wrapper(*args, **kwargs):
        # Thread CPU time, not wall time: a keep-alive connection's wait for its next request,
        # and time other threads hold the GIL, are not this request's cost.
        prof = cProfile.Profile(time.thread_time_ns, 1e-9)
        prof.enable()
        try:
            return method(*args, **kwargs)
        finally:
            prof.disable()
            with _lock:
                if _stats:
                    _stats[0].add(prof)
                else:
                    _stats.append(pstats.Stats(prof))
                _count[0] += 1
                if _count[0] % 50 == 0:
                    _stats[0].dump_stats(out)

    return wrapper


def main() -> None:
    out, *rest = sys.argv[1:]
    from gunicorn.workers import gthread
    from werkzeug.serving import WSGIRequestHandler

    WSGIRequestHandler.handle_one_request = _profiled(WSGIRequestHandler.handle_one_request, out)
    gthread.ThreadWorker.handle = _profiled(gthread.ThreadWorker.handle, out)
    sys.path[0] = os.getcwd()  # as `python run.py` or `python -m gunicorn` from the checkout would have it
    if rest[0] == "-m":
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
