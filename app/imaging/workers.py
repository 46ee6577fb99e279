"""The pool of worker processes that prepares uploaded DICOM files, one pool per server process.

Parsing, validating, de-identifying and laying out a file is pure CPU work in Python; in the
server's own process it holds the GIL, so a 2-core machine used one core for ingest. The pool
is started on the first upload (INGEST_WORKERS processes; 0 prepares in the request thread).
Workers come from a fork server, never forked from the threaded server itself: a fork copies
whatever locks the server's other threads hold at that instant.

Each worker has a pipe of its own for calls and one for results, and no thread of the server
serves them: a call is written by the thread that submits it, and its result is read by the
thread that waits for it (a worker answers its calls in order). concurrent.futures'
ProcessPoolExecutor cost the server ten times as much CPU per call (≈ 240 µs against ≈ 25 µs,
docs/BENCHMARKS.md): its manager thread and its queue's feeder thread wake for every call and
take the GIL from the request threads.

A file goes to a worker through a shared memory segment, not through a pipe: pickling
500 KB into a 64 KB pipe cost the server process about a quarter of its time per file (the
pickle, a dozen pipe writes, the feeder thread). An uploaded file is written into a segment as
its multipart body arrives (SharedFile), so the worker is handed its name with no copy; once
the file is stored (or given up) the segment goes back to a short free list for the next file,
so that most files reuse a mapped segment.
Segments are registered with multiprocessing's resource tracker, which unlinks any the server
leaves behind if it dies. Workers read a segment as a file under /dev/shm (Linux), so that they
never register it with the tracker themselves.
"""

import contextlib
import errno
import io
import logging
import multiprocessing
import os
import pickle
import select
import threading
import time
import traceback
from collections import deque
from concurrent.futures import Future, InvalidStateError
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)
SHM_DIR = Path("/dev/shm")  # noqa: S108 - read only, names made by SharedMemory (random, O_EXCL, 0600)

_DIED = "an ingest worker process died"
_lock = threading.Lock()
_pool: "WorkerPool | None" = None
_owner_pid: int | None = None


def get_pool(size: int) -> "WorkerPool | None":
    """Return this process's pool of ``size`` workers, starting it on first use; None if size is 0."""
    global _pool, _owner_pid
    if size <= 0:
        return None
    with _lock:
        # A pool belongs to the process that made it (a forked server process makes its own).
        if _pool is None or _owner_pid != os.getpid():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["app.imaging.ingest"])
            _pool = WorkerPool(size, context=context, initializer=_watch_server, initargs=(os.getpid(),))
            _owner_pid = os.getpid()
        return _pool


def discard_pool(pool: "WorkerPool") -> None:
    """Forget a broken pool (a worker died) so that the next file starts a fresh one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(cancel_futures=True)


class WorkerPool:
    """``size`` worker processes, each fed through a pipe of its own; submit() returns a Future.

    If a worker dies, the pool is broken, as concurrent.futures' is: its other workers are
    stopped, every call not answered yet fails with BrokenProcessPool, and so does submit().
    """

    def __init__(self, size: int, *, context=None, initializer=None, initargs: tuple = ()):
        context = context or multiprocessing.get_context("forkserver")
        self.size = size
        self._broken: str | None = None
        self._closed = False
        self._workers: list[_Worker] = []
        try:
            for _ in range(size):
                self._workers.append(_Worker(self, context, initializer, initargs))
        except BaseException:
            self.shutdown()
            raise

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Send fn(*args, **kwargs) to the worker with the fewest calls waiting (fn and its arguments are pickled)."""
        if self._broken:
            raise BrokenProcessPool(self._broken)
        if self._closed:
            raise RuntimeError("cannot submit to a worker pool after shutdown")
        worker = min(self._workers, key=lambda w: len(w.pending))
        return worker.send(pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL))

    def shutdown(self, wait: bool = False, *, cancel_futures: bool = False) -> None:
        """Let the workers exit once they have answered what they hold (their call pipes are closed).

        ``cancel_futures`` cancels the calls whose answers nobody has read yet (of a broken pool,
        those have already failed). ``wait`` waits for the workers to exit, and stops any that
        has not within a few seconds (one blocked writing answers nobody reads).
        """
        self._closed = True
        for worker in self._workers:
            if cancel_futures:
                for job in list(worker.pending):
                    job.cancel()
            worker.close()
        if wait:
            for worker in self._workers:
                worker.process.join(5)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()

    def _break(self, reason: str) -> None:
        """A worker is gone: every call not answered fails, and the other workers are stopped."""
        if self._broken:
            return
        self._broken = reason
        for worker in self._workers:
            for job in list(worker.pending):
                with contextlib.suppress(InvalidStateError):  # answered, or cancelled, already
                    job.set_exception(BrokenProcessPool(reason))
            # Only a live one: the pid of a worker that died long ago may be another process's now.
            if worker.process.is_alive():
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    worker.process.kill()
            worker.wake()


class _Job(Future):
    """A call a worker holds; done() and result() read that worker's answers themselves.

    Nobody reads answers in the background, so a callback (add_done_callback) or
    concurrent.futures.wait() sees a call end only once some thread has asked done() or result().
    """

    def __init__(self, worker: "_Worker"):
        super().__init__()
        self._worker = worker

    def done(self) -> bool:
        if not super().done():
            self._worker.collect(None)
        return super().done()

    def result(self, timeout=None):
        self._worker.collect(self, timeout)
        return super().result(0)

    def exception(self, timeout=None):
        self._worker.collect(self, timeout)
        return super().exception(0)


class _Worker:
    """One worker process, its two pipes and its calls not yet answered (in the order it answers them).

    One thread at a time reads the result pipe (the reader); the others wait on ``_turn`` and are
    woken after each answer it reads, so a thread whose call was answered returns at once even if
    the reader is still waiting for a later call of its own.
    """

    def __init__(self, pool: WorkerPool, context, initializer, initargs: tuple):
        self.pool = pool
        calls_in, calls_out = context.Pipe(duplex=False)
        results_in, results_out = context.Pipe(duplex=False)
        self.process = context.Process(target=_serve, args=(calls_in, results_out, initializer, initargs),
                                       name="ingest-worker", daemon=True)
        try:
            self.process.start()
        finally:
            calls_in.close()
            results_out.close()
        self._calls, self._results = calls_out, results_in
        self.pending: deque[_Job] = deque()
        self._send_lock = threading.Lock()
        self._turn = threading.Condition()
        self._reading = False

    def send(self, message: bytes) -> _Job:
        job = _Job(self)
        with self._send_lock:
            if self._calls.closed:
                raise BrokenProcessPool(self.pool._broken or "the worker pool was shut down")  # noqa: SLF001
            self.pending.append(job)
            try:
                self._calls.send_bytes(message)
            except OSError:  # the worker is gone (EPIPE)
                with contextlib.suppress(ValueError):  # already failed and taken by a reader
                    self.pending.remove(job)
                self.pool._break(_DIED)  # noqa: SLF001
                raise BrokenProcessPool(_DIED) from None
        return job

    def collect(self, until: _Job | None, timeout: float | None = None) -> None:
        """Read the answers that have arrived; with ``until``, wait until that call is answered.

        Raises TimeoutError if ``until`` is not answered within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._turn:
            while self._reading:
                if until is None:
                    return  # the reader resolves what arrives
                if Future.done(until):
                    return
                if not self._turn.wait(_left(deadline)) and not Future.done(until):
                    raise TimeoutError
            self._reading = True
        try:
            self._read(until, deadline)
        finally:
            with self._turn:
                self._reading = False
                self._turn.notify_all()

    def _read(self, until: _Job | None, deadline: float | None) -> None:
        while self.pending and not (until is not None and Future.done(until)):
            wait = 0 if until is None else _left(deadline)
            try:
                arrived = wait is None or self._results.poll(wait)
                message = self._results.recv_bytes() if arrived else None
            except (EOFError, OSError):
                self._fail_pending()
                return
            except Exception:  # the pipe's position is unknown now: its answers can no longer be matched
                self._fail_pending()
                raise
            if message is None:  # nothing more has arrived
                if until is None:
                    return
                raise TimeoutError
            job = self.pending.popleft()  # the answer is this call's, whether or not it decodes
            try:
                ok, value = pickle.loads(message)  # noqa: S301 - our own worker's answer, pickled by _serve
            except Exception as exc:  # noqa: BLE001 - that call fails; the next answers stay matched
                ok, value = False, RuntimeError(f"a worker's answer cannot be read: {type(exc).__name__}")
            with contextlib.suppress(InvalidStateError):  # cancelled, or failed by a broken pool
                job.set_result(value) if ok else job.set_exception(value)
            with self._turn:
                self._turn.notify_all()

    def _fail_pending(self) -> None:
        """The worker's result pipe ended: it died (or was stopped); none of its calls will be answered."""
        self.pool._break(_DIED)  # noqa: SLF001
        while self.pending:
            job = self.pending.popleft()
            with contextlib.suppress(InvalidStateError):
                job.set_exception(BrokenProcessPool(_DIED))

    def wake(self) -> None:
        """Wake the threads waiting for the reader: their calls may have just failed."""
        with self._turn:
            self._turn.notify_all()

    def close(self) -> None:
        with self._send_lock:
            self._calls.close()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, set as its __cause__ in the server."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _with_traceback(exc: BaseException, text: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(text)
    return exc


class _Failure:
    """An exception raised in a worker, pickled with its traceback as text (the frames cannot cross)."""

    def __init__(self, exc: BaseException):
        self.exc = exc
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def __reduce__(self):
        return _with_traceback, (self.exc, self.text)


def _serve(calls, results, initializer, initargs: tuple) -> None:
    """A worker's loop: run each call read from its pipe, write back (True, result) or (False, exception)."""
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            message = calls.recv_bytes()
        except (EOFError, OSError):
            return  # the pool was shut down (or the server is gone)
        try:
            fn, args, kwargs = pickle.loads(message)  # noqa: S301 - written by the server that started us
            answer = _pickled(True, fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - every failure of a call goes back to its caller
            answer = _pickled(False, _Failure(exc))
        results.send_bytes(answer)


def _pickled(ok: bool, value) -> bytes:
    """The answer to a call as bytes, or the failure to pickle it (never a silent hang in the caller).

    An exception is also unpickled here first: one that pickles but cannot be rebuilt (an
    ``__init__`` of other arguments than its ``args``) would fail only in the server.
    """
    try:
        data = pickle.dumps((ok, value), pickle.HIGHEST_PROTOCOL)
        if not ok:
            pickle.loads(data)  # noqa: S301 - what we pickled a line above
        return data
    except Exception as exc:  # noqa: BLE001 - any value may fail to pickle
        what = "result" if ok else type(value.exc).__name__
        return pickle.dumps((False, _Failure(RuntimeError(
            f"a worker's {what} cannot be sent back: {type(exc).__name__}"))), pickle.HIGHEST_PROTOCOL)


def _watch_server(server_pid: int) -> None:
    """Exit this worker when the server process that started it is gone (runs in each worker).

    A server stopped by a signal runs no clean-up. Its workers then read the end of their call
    pipes, unless some other process still holds a write end (one the server started after the
    pool, say); so a daemon thread also waits on the server's pidfd (Linux) or polls its pid.
    """

    def watch() -> None:
        try:
            fd = os.pidfd_open(server_pid)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            select.select([fd], [], [])
        else:
            while _alive(server_pid):
                time.sleep(2)
        os._exit(0)

    if not _alive(server_pid):
        os._exit(0)
    threading.Thread(target=watch, name="watch-server", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SEGMENT_STEP = 1 << 20  # segments are made in whole MB, so that one fits many files
# Free segments kept for the next files (a fresh one costs a page fault per 4 KB, and the
# resource tracker a message each way). A file holds its segment from its first byte until it
# is stored, so two requests in flight hold 20-30; 8 kept meant a new segment every 10 files.
KEEP_SEGMENTS = 32
KEEP_MAX_BYTES = 16 << 20  # a larger segment is unlinked at once
KEEP_FREE_BYTES = 64 << 20  # and the free list never holds more than this

_segments_lock = threading.RLock()  # re-entered if a SharedFile is collected (closed) inside
_free: list[shared_memory.SharedMemory] = []
_free_pid: int | None = None
_in_use = 0


class SharedMemoryFull(OSError):
    """No shared memory segment can be had now (/dev/shm is full): the caller goes on without one."""


def _take(size: int) -> shared_memory.SharedMemory:
    """Return a segment of at least size bytes, free or new; the caller must release() it.

    Raises SharedMemoryFull when there is no room for a new one, even after the free list is given back.
    """
    global _in_use
    segment = None
    with _segments_lock:
        _own_free_list()
        for i, free in enumerate(_free):
            if free.size >= size:
                segment = _free.pop(i)
                break
        _in_use += 1
    if segment is None:
        capacity = max(1, -(-size // SEGMENT_STEP)) * SEGMENT_STEP
        try:
            try:
                segment = _new_segment(capacity)
            except SharedMemoryFull:
                if not _drop_free():  # the free segments hold shared memory too: give it back, try again
                    raise
                segment = _new_segment(capacity)
        except BaseException as exc:
            with _segments_lock:
                _in_use -= 1
            if isinstance(exc, SharedMemoryFull):
                _warn_full(exc)  # only now: a retry after dropping the free segments may have succeeded
            raise
    return segment


def _new_segment(capacity: int) -> shared_memory.SharedMemory:
    """A new segment whose memory is reserved at once.

    Memory of a segment is only taken when a page is first written, and a write to a page that
    /dev/shm has no room for kills the process with SIGBUS (a container's /dev/shm is 64 MB by
    default). Reserving it here (posix_fallocate) turns that into SharedMemoryFull.
    """
    try:
        segment = shared_memory.SharedMemory(create=True, size=capacity)
    except OSError as exc:
        raise SharedMemoryFull(exc.errno, f"no shared memory segment can be made: {exc.strerror}") from None
    try:
        _reserve(segment.name, capacity)
    except OSError as exc:
        segment.close()
        segment.unlink()
        raise SharedMemoryFull(exc.errno, f"no room in shared memory for {capacity >> 20} MB: {exc.strerror}") from None
    return segment


def _reserve(name: str, size: int) -> None:
    """Allocate a segment's memory now (Linux, where segments are files under /dev/shm)."""
    path = SHM_DIR / name
    if not path.parent.is_dir():
        return  # no /dev/shm (not Linux): the platform backs segments its own way
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        # A file system without fallocate: the segment is used unreserved, as before.
    finally:
        os.close(fd)


_full_warned = [0.0]


def _warn_full(exc: SharedMemoryFull) -> None:
    """Log that shared memory cannot be had, at most once a minute (uploads go on without it, more slowly)."""
    now = time.monotonic()
    if not _full_warned[0] or now - _full_warned[0] >= 60:
        _full_warned[0] = now
        if exc.errno == errno.ENOSPC:
            log.warning("shared memory (/dev/shm) is full (%s): uploaded files are prepared in the server process"
                        " until there is room; give the server more (docker run --shm-size)", exc.strerror)
        else:
            log.warning("shared memory cannot be used (%s): uploaded files are prepared in the server process"
                        " until it can", exc.strerror)


def _drop_free() -> bool:
    """Close and unlink this process's free segments; return whether there were any."""
    with _segments_lock:
        _own_free_list()
        dropped, _free[:] = list(_free), []
    for segment in dropped:
        _close_and_unlink(segment)
    return bool(dropped)


def share(stream: BinaryIO, size: int) -> shared_memory.SharedMemory:
    """Copy the rest of stream (size bytes) into a shared memory segment; the caller must release() it.

    A SharedFile is already in one: its segment is handed over, not copied.
    """
    if isinstance(stream, SharedFile) and stream.tell() == 0 and stream.size == size:
        return stream.detach()
    segment = _take(size)
    try:
        with segment.buf[:size] as view:
            done = 0
            while done < size:
                n = stream.readinto(view[done:])
                if not n:
                    raise EOFError(f"the upload's file ended after {done} of {size} bytes")
                done += n
    except BaseException:
        release(segment)
        raise
    return segment


class SharedFile(io.RawIOBase):
    """A file written into a shared memory segment as it arrives, then read like any file or handed to share().

    The segment is given back when the file is closed, unless share() took it (detach) first; a
    file outgrowing its segment moves to one twice as large.
    """

    def __init__(self, capacity: int = SEGMENT_STEP):
        super().__init__()
        self._segment: shared_memory.SharedMemory | None = None  # close() runs even if _take fails
        self.size = 0
        self._pos = 0
        self._segment = _take(capacity)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = len(data)
        end = self._pos + n
        if end > self._segment.size:
            self._grow(end)
        if self._pos > self.size:  # written past the end: the gap reads as zeros, as in a file
            self._segment.buf[self.size:self._pos] = bytes(self._pos - self.size)
        self._segment.buf[self._pos:end] = data
        self._pos, self.size = end, max(self.size, end)
        return n

    def _grow(self, needed: int) -> None:
        bigger = _take(max(needed, 2 * self._segment.size))
        bigger.buf[:self.size] = self._segment.buf[:self.size]
        release(self._segment)
        self._segment = bigger

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self.size - self._pos))
        b[:n] = self._segment.buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self._pos + n)
        data = bytes(self._segment.buf[self._pos:end]) if end > self._pos else b""
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def detach(self) -> shared_memory.SharedMemory:
        """Hand over the segment (its first size bytes are the file); the caller must release() it."""
        segment, self._segment = self._segment, None
        super().close()
        return segment

    def close(self) -> None:
        if self._segment is not None:
            segment, self._segment = self._segment, None
            release(segment)
        super().close()


def release(segment: shared_memory.SharedMemory) -> None:
    """Give back a segment from share(): kept for the next file, or closed and unlinked.

    A worker still reading a segment given back (its request failed) reads bytes whose result
    nobody waits for any more.
    """
    global _in_use
    with _segments_lock:
        _in_use -= 1
        _own_free_list()
        if segment.size <= KEEP_MAX_BYTES and len(_free) < KEEP_SEGMENTS and \
                segment.size + sum(free.size for free in _free) <= KEEP_FREE_BYTES:
            _free.append(segment)
            return
    _close_and_unlink(segment)


def _close_and_unlink(segment: shared_memory.SharedMemory) -> None:
    try:
        segment.close()
    except BufferError:
        pass  # a view is still held (a traceback's frame): the mapping goes when it is collected
    finally:
        segment.unlink()


def segments_in_use() -> int:
    """How many segments share() handed out that are not released yet (0 between requests)."""
    return _in_use


def _own_free_list() -> None:
    """Forget free segments inherited through a fork: they belong to the parent process."""
    global _free, _free_pid, _in_use
    if _free_pid != os.getpid():
        _free, _free_pid, _in_use = [], os.getpid(), 0


def read_shared(name: str, size: int) -> bytes:
    """Return the size bytes of a segment made by share() in another process (runs in the workers)."""
    path = SHM_DIR / name
    if path.parent.is_dir():
        with path.open("rb", buffering=0) as f:
            data = f.read(size)
    else:  # POSIX shared memory without /dev/shm (not Linux): attach through the module
        segment = shared_memory.SharedMemory(name=name)
        try:
            data = bytes(segment.buf[:size])
        finally:
            segment.close()
    if len(data) != size:
        raise EOFError(f"shared segment {name} holds {len(data)} of {size} bytes")
    return data
