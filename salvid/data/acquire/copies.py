"""What every derived copy of a dataset (``pack``, ``downscale``, ``small-objects``) does with its destination.

A copy is written into ``<out>.partial`` and renamed to ``<out>`` only when complete, so a run that stops
half-way leaves no folder that looks finished; an existing ``<out>``, or one inside the source, is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from salvid.data.layouts import DatasetError
from salvid.errors import UnsafeOutputError


def start_copy(root: Path, out: Path) -> Path:
    """The empty ``<out>.partial`` to write the copy of ``root`` into (a stale one from a stopped run removed)."""
    if out.exists():
        raise UnsafeOutputError(f"{out}: already exists; choose another --out or remove it")
    if out.resolve().is_relative_to(root.resolve()):
        raise UnsafeOutputError(f"{out}: inside the dataset {root}; choose an --out outside it")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def davis_frames_root(root: Path, resolution: str) -> Path:
    """``root/JPEGImages/<resolution>``, or one line saying which resolution folders the copy has."""
    frames_root = root / "JPEGImages" / resolution
    if not frames_root.is_dir():
        found = sorted(p.name for p in (root / "JPEGImages").glob("*") if any(q.is_dir() for q in p.glob("*")))
        hint = f"; this copy has {found}: give --option resolution=<one of them>" if found else \
            ": --root must be a DAVIS-layout dataset (JPEGImages/<resolution>/<sequence>/)"
        raise DatasetError(f"{frames_root}: no such frame folder{hint}")
    return frames_root
