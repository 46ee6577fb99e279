"""Run a server with a timeline of its S3 puts or requests: ``python bench/_timeline.py OUT KIND ARGS...``.

KIND ``app``: ARGS run the app (``run.py``); every ``S3Store.put`` and every upload
(``ingest.ingest``), with its steps (``_start``: a file handed to a worker, ``_outcome``: waiting
for its result, ``_settle``: waiting for a put, ``_record``: the index rows), appends
``kind start end thread_cpu thread`` (perf_counter seconds, thread CPU seconds, thread id) to OUT.
KIND ``moto``: ARGS are moto.server's; every connection its werkzeug server handles (one request
each: it closes every connection) appends a ``conn`` line the same way.
Lines are flushed each time, so a server ended by SIGTERM leaves a whole file.
Used by ``bench/s3_phases.py --timeline``.
"""

import functools
import os
import runpy
import sys
import threading
import time

_lock = threading.Lock()


def _timed(fn, kind: str, out):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            t1, c1 = time.perf_counter(), time.thread_time()
            with _lock:
                out.write(f"{kind} {t0:.6f} {t1:.6f} {c1 - c0:.6f} {threading.get_ident()}\n")
                out.flush()

    return wrapper


def main() -> None:
    path, kind, *rest = sys.argv[1:]
    out = open(path, "a")  # noqa: SIM115 - open for the life of the process
    sys.path[0] = os.getcwd()
    if kind == "app":
        from app.imaging import ingest
        from app.storage import s3

        s3.S3Store.put = _timed(s3.S3Store.put, "put", out)
        for name in ("ingest", "_store_all", "_record", "_outcome", "_settle", "_start"):
            setattr(ingest, name, _timed(getattr(ingest, name), name, out))
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")
    else:
        from werkzeug.serving import WSGIRequestHandler

        WSGIRequestHandler.handle = _timed(WSGIRequestHandler.handle, "conn", out)
        sys.argv = ["moto.server", *rest]
        runpy.run_module("moto.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
