"""The ingest worker pool: answers in order to many threads, failures carried back, a dead worker breaks the pool."""

import os
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from app.imaging import workers


@pytest.fixture
def make_pool():
    """Start pools of a given size; each is shut down when the test ends."""
    pools = []

    def make(size: int) -> workers.WorkerPool:
        pools.append(workers.WorkerPool(size))
        return pools[-1]

    yield make
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def pool(make_pool):
    return make_pool(2)


def test_many_threads_get_their_own_answers(pool):
    """Each thread submits a run of calls and waits for them out of order: every answer is its own call's."""
    errors = []

    def client(k: int) -> None:
        try:
            futures = [(i, pool.submit(pow, k, i)) for i in range(40)]
            for i, future in reversed(futures):
                assert future.result() == k ** i
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(2, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_done_reads_an_answer_without_waiting(pool):
    future = pool.submit(time.sleep, 0.2)
    assert not future.done()
    deadline = time.monotonic() + 10
    while not future.done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert future.result() is None


def test_an_exception_comes_back_with_the_workers_traceback(pool):
    with pytest.raises(ZeroDivisionError) as caught:
        pool.submit(divmod, 1, 0).result()
    assert isinstance(caught.value.__cause__, workers.RemoteTraceback)
    assert "ZeroDivisionError" in str(caught.value.__cause__)
    assert pool.submit(divmod, 7, 2).result() == (3, 1)  # the worker goes on


def test_an_answer_that_cannot_be_pickled_is_an_error_not_a_hang(pool):
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        pool.submit(threading.Lock).result()


def test_a_killed_worker_fails_every_waiting_call_and_the_pool(pool):
    slow = [pool.submit(time.sleep, 30) for _ in range(4)]  # both workers busy, two calls queued behind
    os.kill(pool.pids[0], signal.SIGKILL)
    for future in slow:
        with pytest.raises(BrokenProcessPool):
            future.result()
    with pytest.raises(BrokenProcessPool):
        pool.submit(abs, -1)


def test_shutdown_lets_the_workers_exit(pool):
    assert pool.submit(abs, -3).result() == 3
    processes = [w.process for w in pool._workers]  # noqa: SLF001 - the processes under test
    pool.shutdown(wait=True)
    assert all(p.exitcode == 0 for p in processes)
    with pytest.raises(RuntimeError):
        pool.submit(abs, -1)


class Fussy:
    """An answer that pickles in the worker but cannot be rebuilt in another process."""

    def __reduce__(self):
        return _rebuild_fussy, (os.getpid(),)


def _rebuild_fussy(pid: int) -> "Fussy":
    if pid != os.getpid():
        raise ValueError("rebuilt in another process")
    return Fussy()


def make_fussy() -> Fussy:
    return Fussy()


def test_an_answer_that_cannot_be_read_fails_its_own_call_and_the_next_answers_stay_matched(make_pool):
    pool = make_pool(1)
    fussy, after = pool.submit(make_fussy), pool.submit(abs, -5)
    with pytest.raises(RuntimeError, match="cannot be read: ValueError"):
        fussy.result()
    assert after.result() == 5


def test_a_call_answered_early_returns_while_another_thread_waits_for_a_later_one(make_pool):
    """The thread reading the pipe for its own slow call wakes the one whose earlier call it read."""
    pool = make_pool(1)
    assert pool.submit(abs, -1).result() == 1  # the worker is up: what follows times only the calls
    early, late = pool.submit(time.sleep, 0.3), pool.submit(time.sleep, 3)
    reader = threading.Thread(target=late.result)
    reader.start()
    time.sleep(0.1)  # the reader has the pipe
    t0 = time.monotonic()
    early.result()
    assert time.monotonic() - t0 < 2
    reader.join(10)


def test_result_honours_its_timeout(pool):
    assert pool.submit(abs, -1).result() == 1
    slow = pool.submit(time.sleep, 1.5)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        slow.result(timeout=0.2)
    assert time.monotonic() - t0 < 1
    assert slow.result() is None
