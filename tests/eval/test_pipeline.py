"""The threads of a pipelined predict: order kept, memory bounded, errors raised in the caller, and on the CPU the
computation never beside the other stages."""

import threading
import time

import pytest

from salvid.inference.pipeline import BackgroundWriter, InlineWriter, alternating, prefetched


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


def test_alternating_computes_alone_and_prepares_the_next_item_while_the_results_are_handled():
    log = []
    producing = [threading.Event() for _ in range(4)]

    def items():
        for i in range(4):
            producing[i].set()
            log.append(("produce", i, threading.get_ident()))
            time.sleep(0.02)
            log.append(("produced", i, threading.get_ident()))
            yield i

    def compute(i):
        log.append(("compute", i, threading.get_ident()))
        time.sleep(0.02)
        log.append(("computed", i, threading.get_ident()))
        return [10 * i, 10 * i + 1]

    seen = []
    for r in alternating(items(), compute):
        log.append(("handle", r, threading.get_ident()))
        if r % 10 == 0 and r < 30:  # handling the first map of a batch: the next item is being produced meanwhile
            assert producing[r // 10 + 1].wait(timeout=10)
        seen.append(r)
    assert seen == [0, 1, 10, 11, 20, 21, 30, 31]
    at = {(kind, i): n for n, (kind, i, _) in enumerate(log)}
    for i in range(4):  # nothing is produced while a computation runs
        assert all(not (at[("compute", i)] < at[(kind, j)] < at[("computed", i)])
                   for kind in ("produce", "produced") for j in range(4))
    for i in range(3):  # the next item: after the computation, before the next computation
        assert at[("computed", i)] < at[("produce", i + 1)]
        assert at[("produced", i + 1)] < at[("compute", i + 1)]
    caller = threading.get_ident()
    assert {t for kind, _, t in log if kind in ("compute", "handle")} == {caller}
    assert caller not in {t for kind, i, t in log if kind == "produce" and i > 0}


def test_alternating_raises_the_producers_error_and_stops_when_left():
    def failing():
        yield 1
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(alternating(failing(), lambda i: [i]))

    def failing_compute(i):
        raise RuntimeError("network failed")
    with pytest.raises(RuntimeError, match="network failed"):
        list(alternating(iter(range(3)), failing_compute))
    before = threading.active_count()
    gen = alternating(iter(range(1000)), lambda i: [i])
    next(gen)
    gen.close()
    assert threading.active_count() == before


def test_inline_writer_runs_each_call_at_once_and_adds_up_its_time():
    out = []
    writer = InlineWriter()
    writer.submit(lambda x: (time.sleep(0.01), out.append(x)), 1)
    assert out == [1] and writer.seconds >= 0.01
    with pytest.raises(OSError, match="disk full"):
        writer.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    writer.close()
