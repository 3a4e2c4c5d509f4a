"""The ``segtrackv2`` layout: SegTrack v2 as distributed (SegTrackv2.zip).

    <root>/JPEGImages/<seq>/<seq>_00001.png      # or .bmp; with or without the sequence-name prefix
    <root>/GroundTruth/<seq>/<seq>_00001.png     # one object: masks beside each other
    <root>/GroundTruth/<seq>/<k>/<seq>_00001.png # several objects: one folder per object, k = 1, 2, ...
    <root>/ImageSets/all.txt                     # optional: sequence names, "*" marks multi-object ones

Frames and masks pair by frame number (masks of some sequences use another extension than their frames).
For multi-object sequences the salient mask is the union of the object masks; a frame where only some objects
have a mask file uses the union of those present. ``split`` names ``ImageSets/<split>.txt``; ``None`` (or
``all`` in the config) takes every folder of ``JPEGImages``.
"""

from __future__ import annotations

from pathlib import Path

from salvid.data.layouts.base import (
    DatasetError,
    VideoSequence,
    pair_frames_and_masks,
    select_sequences,
    subfolders,
)


def segtrackv2(root: str | Path, split: str | None = None) -> list[VideoSequence]:
    root = Path(root)
    frames_root = root / "JPEGImages"
    split_file = None if split is None else root / "ImageSets" / f"{split}.txt"
    names = select_sequences(subfolders(frames_root), split_file, frames_root)
    return [pair_frames_and_masks(name, frames_root / name, _object_dirs(root / "GroundTruth" / name)) for name in names]


def _object_dirs(gt_dir: Path) -> list[Path]:
    if not gt_dir.is_dir():
        raise DatasetError(f"{gt_dir}: ground-truth folder missing")
    objects = list(subfolders(gt_dir).values())
    return objects or [gt_dir]
