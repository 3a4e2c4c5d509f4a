"""The ``concat`` layout: several datasets read as one, with per-dataset sampling weights.

    data:
      layout: concat
      root: ${paths.data_dir}            # base of relative dataset roots
      splits: {train: train, val: null, test: test}
      datasets:
        vot2016: {layout: vot2016, root: VOT2016, weight: 1.0, splits: {train: all}}
        usvd:    {layout: usvd, root: UVSD, weight: 2.0, splits: {train: all}}
        davis:   {layout: davis2016, root: DAVIS, splits: {test: all}, resolution: 480p}

Each entry names a layout, its root, optional layout options, and:

* ``splits``: which of its own splits answers each requested split name (``all`` = every sequence). Without
  ``splits`` a requested split passes through unchanged; with it, a name it does not map takes nothing from
  that dataset (above, ``test`` reads only DAVIS).
* ``weight`` (default 1): how many times per training epoch each of its annotated frames is visited. A
  fractional part is a per-epoch random choice of chunks (chunk kept with that probability), so weights 1 and
  2 make the second dataset's frames twice as frequent in every batch mix. Evaluation streams ignore weights.
* ``train_only`` (default false): hold-outs (``data.val_holdout`` / ``data.test_holdout``) and folds
  (``data.folds``) never take its sequences, so e.g. still images mixed into video training stay in training
  while validation and test sequences are held out of the videos alone.

VideoSequence names become ``<dataset>/<sequence>``, so names from different datasets never collide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from salvid.data.layouts.base import DatasetError, VideoSequence

ENTRY_KEYS = ("layout", "root", "weight", "splits", "train_only")


def concat(root: str | Path, split: str | None, datasets: Mapping[str, Mapping[str, Any]]) -> list[VideoSequence]:
    from salvid.data.layouts import ALL, list_sequences  # the registry imports this module

    if not datasets:
        raise DatasetError("data.datasets: the concat layout needs at least one dataset")
    requested = ALL if split is None else split
    sequences = []
    for name, entry in datasets.items():
        if "layout" not in entry or "root" not in entry:
            raise DatasetError(f"data.datasets.{name}: needs a layout and a root")
        splits = entry.get("splits")
        if splits is not None and requested not in splits:
            continue
        own_split = requested if splits is None else splits[requested]
        if own_split is None:
            continue
        weight = float(entry.get("weight", 1.0))
        if weight < 0:
            raise DatasetError(f"data.datasets.{name}.weight={weight}: must be >= 0")
        options = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
        train_only = entry.get("train_only", False)
        if not isinstance(train_only, bool):
            raise DatasetError(f"data.datasets.{name}.train_only={train_only!r}: must be true or false")
        for seq in list_sequences(entry["layout"], Path(root) / entry["root"], own_split, f"data.datasets.{name}",
                                  **options):
            sequences.append(dataclasses.replace(seq, name=f"{name}/{seq.name}", weight=weight,
                                                 train_only=train_only))
    if not sequences:
        raise DatasetError(f"data.datasets: no dataset provides split {requested!r}")
    return sequences
