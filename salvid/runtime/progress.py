"""What long runs print while they work, and the library noise they leave out.

* :func:`progress` counts the work of ``evaluate`` and ``predict`` (frames): on a terminal a bar with done /
  total, frames/s and the time left; anywhere else (a CI log, ``nohup``, a pipe) one line every
  :func:`interval` seconds, so a log file shows that a long run is alive and how far it got.
  :class:`salvid.training.callbacks.TrainingProgress` does the same for training.
* :func:`quiet` drops messages a salvid user cannot act on: Lightning's advertisement for its cloud logger,
  its note that salvid's model summary replaces its default one, the pytree deprecation inside Lightning,
  Lightning's warning that a dataset with ``__len__`` may count unevenly over workers (salvid's stream gives
  every worker whole batches), and every Lightning log line printed twice under Hydra.

Nothing here imports torch: training imports it only after setting its oneDNN variable.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

INTERVAL_VAR = "SALVID_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def interval() -> float:
    """Seconds between progress lines off a terminal: ``$SALVID_PROGRESS_SECONDS``, else 30."""
    try:
        value = float(os.environ.get(INTERVAL_VAR, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def interactive() -> bool:
    """Whether stdout is a terminal that shows a live progress bar (rich's test, so both agree)."""
    from rich import get_console

    return get_console().is_terminal


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Ticker:
    """Calls ``emit`` every ``every`` seconds on a daemon thread, from :meth:`start` until :meth:`stop`."""

    def __init__(self, emit: Callable[[], None], every: float):
        self.emit, self.every = emit, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="salvid-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.emit()
            except Exception:  # noqa: BLE001  (a progress line must never end a run)
                log.debug("progress line failed", exc_info=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class Counter:
    """Work done out of ``total``: what a progress line or bar shows."""

    def __init__(self, description: str, total: int, unit: str = "frames"):
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.started = time.perf_counter()
        self._bar: Callable[[int, str], None] | None = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar(n, self.description)

    def describe(self, description: str) -> None:
        self.description = description
        if self._bar is not None:
            self._bar(0, description)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """Units per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """``bear: 120/356 frames (34%), 8.1 frames/s, 15 s elapsed, about 29 s left``."""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        text = f"{self.description}: {self.done}/{self.total} {self.unit}{share}, {self.rate:.1f} {self.unit}/s, " \
               f"{duration(self.elapsed)} elapsed"
        if self.rate > 0 and self.total > self.done:
            text += f", about {duration((self.total - self.done) / self.rate)} left"
        return text


@contextmanager
def progress(description: str, total: int, unit: str = "frames") -> Iterator[Counter]:
    """Count work: a live bar on a terminal (done/total, units/s, time left), else a line every
    :func:`interval` seconds and once at the end (logged, so it also reaches the run's log file)."""
    counter = Counter(description, total, unit)
    if interactive():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        rate = TextColumn(f"{{task.fields[rate]:.1f}} {unit}/s")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit), rate,
                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()) as bar:
            task = bar.add_task(description, total=total, rate=0.0)

            def update(n: int, text: str) -> None:
                bar.update(task, advance=n, description=text, rate=counter.rate)

            counter._bar = update
            yield counter
        return
    ticker = Ticker(lambda: log.info(counter.line()), interval()).start()
    try:
        yield counter
    finally:
        ticker.stop()
    log.info(counter.line())  # every stage leaves at least its final count in the log, however short


# -- noise ------------------------------------------------------------------------------------------------

NOISE_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # torch's pytree deprecation, raised inside Lightning
    r"Your `IterableDataset` has `__len__` defined",  # salvid's stream deals whole batches to each worker
)
NOISE_LOG_LINES = (
    "Tip: For seamless cloud logging",  # Lightning advertising its cloud logger
    "Trainer already configured with model summary callbacks",  # salvid's summary replaces Lightning's default
)


class _DropLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NOISE_LOG_LINES)


def quiet() -> None:
    """Leave out the messages listed in the module docstring. Call it in an entry point once Hydra has set up
    logging and, in training, once Lightning is imported."""
    for pattern in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines())
    if logging.getLogger().handlers and "lightning" in sys.modules:
        # Hydra's handlers print every record; the console handlers Lightning adds on import would repeat it
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            console = [h for h in logger.handlers if type(h) is logging.StreamHandler]
            for handler in console:
                logger.removeHandler(handler)
            if console and not logger.handlers:  # its records now reach the root handlers instead
                logger.propagate = True
