"""The threads of a pipelined predict: order kept, memory bounded, errors raised in the caller."""

import threading
import time

import pytest

from salvid.inference.pipeline import BackgroundWriter, prefetched


def test_prefetched_keeps_order_and_runs_at_most_depth_ahead():
    produced = []

    def items():
        for i in range(10):
            produced.append(i)
            yield i

    seen = []
    for i in prefetched(items(), depth=2):
        time.sleep(0.01)  # the consumer is slower: the producer waits on the full queue
        seen.append(i)
        assert len(produced) - len(seen) <= 2 + 1  # the queue plus the item in the producer's hands
    assert seen == list(range(10))


def test_prefetched_raises_the_producers_error_and_stops_when_left():
    def failing():
        yield 1
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(prefetched(failing()))
    before = threading.active_count()
    gen = prefetched(iter(range(1000)), depth=1)
    next(gen)
    gen.close()  # leaving the loop early stops and joins the thread
    assert threading.active_count() == before


def test_background_writer_runs_calls_in_order_and_reports_the_first_error():
    out = []
    writer = BackgroundWriter(depth=2)
    for i in range(20):
        writer.submit(out.append, i)
    writer.close()
    assert out == list(range(20)) and writer.seconds >= 0

    def fail(_):
        raise OSError("disk full")
    writer = BackgroundWriter(depth=2)
    writer.submit(fail, 0)
    with pytest.raises(OSError, match="disk full"):  # raised once: by a later submit, or by close
        writer.submit(out.append, "dropped")
        for _ in range(100):
            writer.submit(out.append, "late")
            time.sleep(0.001)
        writer.close()
    writer.close()  # once raised, closing again is quiet
    assert "dropped" not in out and "late" not in out
