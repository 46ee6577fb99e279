"""The shared put threads: the oldest request's calls first, a bounded head start, batches that wait for their calls."""

import threading
import time

import pytest

from app.storage import puts
from app.storage.puts import PutQueue


def blocked_queue() -> tuple[PutQueue, threading.Event, list]:
    """A queue of one thread held busy until the event is set, and the list its calls append to."""
    queue, gate, ran = PutQueue(1), threading.Event(), []
    queue.batch().submit(gate.wait, 10)
    time.sleep(0.05)  # the thread has taken the blocking call: what follows waits in the heap
    return queue, gate, ran


def test_the_older_requests_calls_go_first_whatever_the_submission_order():
    queue, gate, ran = blocked_queue()
    now = time.monotonic()
    older, younger = queue.batch(started=now - 0.5), queue.batch(started=now - 0.1)
    futures = [younger.submit(ran.append, "young-1"), older.submit(ran.append, "old-1"),
               younger.submit(ran.append, "young-2"), older.submit(ran.append, "old-2")]
    gate.set()
    for future in futures:
        future.result(10)
    assert ran == ["old-1", "old-2", "young-1", "young-2"]


def test_a_long_upload_goes_ahead_of_a_newer_one_for_at_most_head_start_max(monkeypatch):
    """A call ranks by its request's start, but never earlier than HEAD_START_MAX before the call itself."""
    monkeypatch.setattr(puts, "HEAD_START_MAX", 0.1)
    queue, gate, ran = blocked_queue()
    long_upload = queue.batch(started=time.monotonic() - 60)
    newcomer = queue.batch()
    mine = newcomer.submit(ran.append, "newcomer")
    first = long_upload.submit(ran.append, "long, sent as the newcomer began")  # within the head start
    time.sleep(0.2)  # past it: the long upload's next call ranks after the newcomer's
    later = long_upload.submit(ran.append, "long, sent later")
    gate.set()
    for future in (first, later, mine):
        future.result(10)
    assert ran == ["long, sent as the newcomer began", "newcomer", "long, sent later"]


def test_leaving_a_batch_waits_for_its_running_calls_and_skips_cancelled_ones():
    queue = PutQueue(2)
    started, ran = threading.Event(), []

    def slow() -> None:
        started.set()
        time.sleep(0.3)
        ran.append("slow")

    blocked = []

    def failing_request() -> None:
        with queue.batch() as batch:
            batch.submit(slow)
            blocked.extend(batch.submit(time.sleep, 0.3) for _ in range(3))  # one runs, two wait
            started.wait(5)
            deadline = time.monotonic() + 5
            while not blocked[0].running() and time.monotonic() < deadline:  # the second thread has it
                time.sleep(0.01)
            for future in blocked:
                future.cancel()
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError, match="the request failed"):
        failing_request()
    assert ran == ["slow"]  # the running call finished before the block was left
    assert [f.cancelled() for f in blocked] == [False, True, True]
    assert blocked[0].done()


def test_a_failing_call_reaches_its_request_and_the_thread_goes_on():
    queue = PutQueue(1)
    with queue.batch() as batch:
        failed = batch.submit(int, "not a number")
        fine = batch.submit(int, "42")
    with pytest.raises(ValueError, match="invalid literal"):
        failed.result()
    assert fine.result() == 42


def test_one_queue_per_process_and_size():
    assert puts.put_queue(3) is puts.put_queue(3)
    assert puts.put_queue(3) is not puts.put_queue(2)


def test_a_request_whose_calls_were_cancelled_leaves_at_once_behind_anothers_long_put():
    queue = PutQueue(1)
    gate = threading.Event()
    older = queue.batch(started=time.monotonic() - 0.5)
    long_put = older.submit(gate.wait, 10)
    mine = queue.batch()
    waiting = mine.submit(abs, -1)
    assert waiting.cancel()
    t0 = time.monotonic()
    mine.__exit__(None, None, None)
    assert time.monotonic() - t0 < 1  # not held until the other request's put ends
    gate.set()
    assert long_put.result(10) is True
