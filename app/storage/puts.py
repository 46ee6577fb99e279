"""The threads that write uploaded files to the object store: shared by every upload of a server process, oldest first.

Each upload used to have two put threads of its own. Two clients sending batches side by side
then shared everything evenly and kept in step: both requests put their files at the same time,
then both did their per-request work at the same time (access check, index rows, commit, audit,
the answer, the client's next request), and meanwhile the store had nothing to do — 12-17 % of
the time against moto (docs/BENCHMARKS.md). Here the puts of the request that began first go
first: it finishes ahead of the other, whose puts keep the store busy while it does that work,
and the two fall out of step.

A request's head start is bounded (HEAD_START_MAX): a put ranks by the time its request began,
but never more than that many seconds before the put itself, so a long upload cannot hold back
one that arrives while it is going on.
"""

import heapq
import itertools
import os
import threading
import time
from concurrent.futures import Future, wait

HEAD_START_MAX = 1.0  # seconds

_lock = threading.Lock()
_queues: dict[tuple[int, int], "PutQueue"] = {}


def put_queue(threads: int) -> "PutQueue":
    """This process's queue of ``threads`` put threads (a forked process gets its own)."""
    key = (os.getpid(), max(1, threads))
    with _lock:
        if key not in _queues:
            _queues[key] = PutQueue(key[1])
        return _queues[key]


class PutQueue:
    """``size`` threads, started on first use, that run the calls of batches, the oldest batch's first."""

    def __init__(self, size: int):
        self.size = size
        self._heap: list = []
        self._cv = threading.Condition()
        self._order = itertools.count()
        self._threads = 0

    def batch(self, started: float | None = None) -> "PutBatch":
        """The calls of one request, ranked by when the request began (now, unless given)."""
        return PutBatch(self, time.monotonic() if started is None else started)

    def _submit(self, started: float, fn, args: tuple) -> Future:
        future: Future = Future()
        rank = max(started, time.monotonic() - HEAD_START_MAX)
        with self._cv:
            if self._threads < self.size:
                try:
                    threading.Thread(target=self._run, name=f"put-{self._threads + 1}", daemon=True).start()
                except RuntimeError:  # no thread to be had now: the running ones will do, if any
                    if not self._threads:
                        raise
                else:
                    self._threads += 1
            heapq.heappush(self._heap, (rank, next(self._order), future, fn, args))
            self._cv.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                _, _, future, fn, args = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue  # cancelled: its request failed before the call began
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the request that waits for the call
                future.set_exception(exc)


class PutBatch:
    """One request's calls. Leaving its ``with`` block waits until none of them is running."""

    def __init__(self, queue: PutQueue, started: float):
        self._queue, self._started = queue, started
        self._futures: list[Future] = []

    def submit(self, fn, *args) -> Future:
        future = self._queue._submit(self._started, fn, args)  # noqa: SLF001 - the batch is the queue's client
        self._futures.append(future)
        return future

    def __enter__(self) -> "PutBatch":
        return self

    def __exit__(self, *exc_info) -> None:
        # A cancelled call never runs (set_running_or_notify_cancel): only the others are waited
        # for, not the other requests' calls ahead of a cancelled one in the queue.
        wait([future for future in self._futures if not future.cancelled()])
