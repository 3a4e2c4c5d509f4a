"""What every derived copy of a dataset (``pack``, ``downscale``, ``small-objects``) does with its destination.

A copy is written into ``<out>.partial`` and renamed to ``<out>`` only when complete, so a run that stops
half-way leaves no folder that looks finished, and one that fails removes its ``.partial``. An existing
``<out>``, one inside the source, and a source inside ``<out>.partial`` (which a stale-copy cleanup would
delete) are refused before anything is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from salvid.errors import UnsafeOutputError

READ_BATCH = 32  # frames decoded at a time: bounded memory for long, high-resolution sequences


@contextmanager
def new_copy(root: Path, out: Path) -> Iterator[Path]:
    """The empty ``<out>.partial`` to write the copy of ``root`` into, renamed to ``out`` when the block ends."""
    partial = out.with_name(out.name + ".partial")
    if out.exists():
        raise UnsafeOutputError(f"{out}: already exists; choose another --out or remove it")
    if out.resolve().is_relative_to(root.resolve()):
        raise UnsafeOutputError(f"{out}: inside the dataset {root}; choose an --out outside it")
    if root.resolve().is_relative_to(partial.resolve()):
        raise UnsafeOutputError(f"{partial}: the copy's working folder would hold the dataset {root}; choose "
                                "another --out")
    shutil.rmtree(partial, ignore_errors=True)  # a stale one from a run that was killed
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(out)
