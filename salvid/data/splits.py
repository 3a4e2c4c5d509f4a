"""Which sequences a data config trains, validates and tests on: a plain function, used by the DataModule
and by ``evaluate`` alike (no Lightning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salvid.data.folds import apply_fold, check_fold_settings
from salvid.data.layouts import VideoSequence, list_sequences
from salvid.data.layouts.base import MissingSplitError
from salvid.errors import ConfigError

STAGES = ("train", "val", "test")


def split_sequences(layout: str, root: str | Path, splits: dict[str, str | None], val_holdout: int = 0,
                    test_holdout: int = 0, folds: int | None = None, fold: int | None = None,
                    **options: Any) -> dict[str, list[VideoSequence]]:
    """``{stage: sequences}`` for each stage whose split is set, then the hold-outs, then the fold.

    With ``splits.test`` (``splits.val``) null, ``test_holdout`` (``val_holdout``) sequences are taken from the
    training sequences: sorted by name, the last ``test_holdout`` go to test and the ``val_holdout`` before
    them to validation. Holding out every training sequence is allowed (a pure evaluation of a small copy).
    Sequences marked ``train_only`` are never held out. With ``folds`` set, fold ``fold`` of the remaining
    training sequences is validation and test, and the test sequences are set aside (:mod:`salvid.data.folds`).
    """
    if folds is not None:
        check_fold_settings(folds, fold, splits, val_holdout)
    stages = {}
    for stage in STAGES:
        if splits.get(stage) is None:
            continue
        try:
            stages[stage] = list_sequences(layout, root, splits[stage], **options)
        except MissingSplitError as e:
            raise e.for_key(f"data.splits.{stage}", None if stage == "train" else f"data.{stage}_holdout") from None
    for stage, k in (("test", test_holdout), ("val", val_holdout)):
        if not k or splits.get(stage) is not None:
            continue
        if k < 0:
            raise ConfigError(f"data.{stage}_holdout={k}: must be >= 0")
        if "train" not in stages:
            raise ConfigError(f"data.{stage}_holdout={k}: holds out training sequences, and data.splits.train is null")
        train = sorted((s for s in stages["train"] if not s.train_only), key=lambda s: s.name)
        kept = [s for s in stages["train"] if s.train_only]
        if k > len(train):
            n, split = len(train), splits["train"]
            after = " left after data.test_holdout" if stage == "val" and "test" in stages else ""
            raise ConfigError(f"data.{stage}_holdout={k}: only {n} training sequence{'s' if n != 1 else ''}{after} "
                              f"in {root} (data.splits.train={split}) to hold out; lower data.{stage}_holdout, or "
                              f"score every sequence with data.split={split} (evaluate)")
        stages["train"], stages[stage] = train[: len(train) - k] + kept, train[len(train) - k :]
    if folds is not None:
        stages = apply_fold(stages, folds, fold)
    return stages
