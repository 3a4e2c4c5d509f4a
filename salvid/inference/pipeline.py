"""Overlapping the stages of ``predict``: decoding the next frames and writing the last maps run on other threads
than the network, in one of two ways.

* Beside the network (a GPU runs it): :func:`prefetched` runs an iterator (decoding, resizing) ahead of its
  consumer and :class:`BackgroundWriter` runs write calls (PNG encoding, video frames) behind their producer,
  each on its own thread behind a bounded queue.
* Between the network's calls (the CPU runs it): :func:`alternating` runs each computation alone and prepares
  the next item on one thread while the caller handles (writes) the last results on its own. The network
  already uses every core, and a thread beside it stalls it: each operator waits for its slowest thread.
  A call that waits on the disk rather than a core (fsync) still runs behind its producer on a
  :class:`BackgroundWriter`.

Either way at most a few batches are held whatever the video's length. Decoders, OpenCV and the network release
the GIL while they work. An error in a thread is raised again in the caller's thread, at its next call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced by a background thread up to ``depth`` ahead. Closing the generator (or leaving its
    loop) stops the thread at its next item."""
    q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            iterator = iter(items)
            while not stop.is_set():
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                if not put(item):
                    return
            put(_DONE)
        except BaseException as e:  # raised again in the consumer
            put(_Failed(e))

    thread = threading.Thread(target=produce, name="salvid-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def alternating(items: Iterable[T], compute: Callable[[T], list[R]]) -> Iterator[R]:
    """``compute(item)``'s results for each item in turn, each computation alone: the next item is produced on a
    background thread while the consumer handles the last computation's results, and is waited for before the
    next computation starts."""
    iterator = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="salvid-prepare") as helper:
        item = next(iterator, _DONE)
        while item is not _DONE:
            results = compute(item)
            upcoming = helper.submit(next, iterator, _DONE)
            yield from results
            item = upcoming.result()


class InlineWriter:
    """:class:`BackgroundWriter`'s interface, running each call at once on the caller's thread."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        start = time.perf_counter()
        try:
            fn(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def close(self) -> None:
        pass


class BackgroundWriter:
    """Runs ``submit``-ted calls in order on one background thread, at most ``depth`` waiting; ``seconds`` adds
    up their time. :meth:`close` waits for them all; an error of one is raised by the next ``submit`` or by
    ``close``, and later calls are dropped."""

    def __init__(self, depth: int = 16):
        self.seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="salvid-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            if call is _DONE:
                return
            if self._error is not None:
                continue
            start = time.perf_counter()
            try:
                call()
            except BaseException as e:
                self._error = e
            self.seconds += time.perf_counter() - start

    def _raise(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True  # once: later calls stay dropped
            raise self._error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise()
        self._queue.put(lambda: fn(*args))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise()
