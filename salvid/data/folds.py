"""K-fold cross-validation over sequences: ``data.folds=K data.fold=k``.

The candidates are the training sequences that remain once the test sequences are set aside (``data.splits.test``
or ``data.test_holdout``), less those marked ``train_only`` (e.g. still images mixed in by ``concat``). Sorted by
name, they are cut into K contiguous folds (sizes differ by at most one, the first folds larger): fold k is
the run's validation *and* test set, the other folds (and every ``train_only`` sequence) train. The real test
sequences enter no fold and are not used at all, so a cross-validation never looks at them. Membership depends
only on the sorted names and K: every run of a sweep over ``data.fold`` sees the same partition.

Selecting the checkpoint on the fold it is then scored on flatters every arm of a comparison alike; compare
arms on the same folds, and keep the test sequences for the one final score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from salvid.errors import ConfigError

if TYPE_CHECKING:
    from salvid.data.layouts import VideoSequence


def fold_out_of_range(fold: Any, folds: int) -> str:
    """The message for a ``data.fold`` outside ``0..folds-1``: the config schema's check, before anything runs,
    and :func:`check_fold_settings`'s."""
    return (f"data.fold={fold!r}: must be an integer in 0..{folds - 1} with data.folds={folds} (sweep them: "
            f"data.fold={','.join(map(str, range(folds)))})")


def fold_names(names: list[str], folds: int) -> list[list[str]]:
    """``names`` sorted and cut into ``folds`` contiguous blocks whose sizes differ by at most one."""
    names = sorted(names)
    size, extra = divmod(len(names), folds)
    blocks, start = [], 0
    for k in range(folds):
        stop = start + size + (k < extra)
        blocks.append(names[start:stop])
        start = stop
    return blocks


def check_fold_settings(folds: object, fold: object, splits: dict[str, str | None], val_holdout: int) -> None:
    """One clear error for a fold setting that cannot work, naming the key."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(f"data.folds={folds!r}: must be an integer >= 2 (or null: no cross-validation)")
    if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < folds:
        raise ConfigError(fold_out_of_range(fold, folds))
    if splits.get("val") is not None:
        raise ConfigError(f"data.splits.val={splits['val']!r}: with data.folds the fold is the validation set; "
                         "set data.splits.val=null")
    if val_holdout:
        raise ConfigError(f"data.val_holdout={val_holdout}: with data.folds the fold is the validation set; "
                         "set data.val_holdout=0")


def apply_fold(stages: dict[str, list[VideoSequence]], folds: int, fold: int) -> dict[str, list[VideoSequence]]:
    """``{train, val, test}`` of fold ``fold``; ``stages`` as listed and held out (its test stage is dropped)."""
    train = stages.get("train", [])
    candidates = {s.name: s for s in train if not s.train_only}
    if len(candidates) < folds:
        raise ConfigError(f"data.folds={folds}: only {len(candidates)} training sequences to cut into folds")
    held = set(fold_names(list(candidates), folds)[fold])
    return {
        "train": [s for s in train if s.train_only or s.name not in held],
        "val": [candidates[n] for n in sorted(held)],
        "test": [candidates[n] for n in sorted(held)],
    }
