"""The ``fbms`` layout: FBMS-59 (Freiburg-Berkeley Motion Segmentation) as distributed.

    <root>/Trainingset/<seq>/<seq>_01.jpg                  # frames (tennis: tennis001.jpg)
    <root>/Trainingset/<seq>/GroundTruth/<seq>_01_gt.pgm   # sparse: about every 20th frame; .ppm when colour
    <root>/Testset/...                                      # same

Annotations are sparse: only frames with a ground-truth file are targets, the others are temporal context.
Ground-truth files pair with frames by frame number (``_gt`` dropped). ``*PROB*`` files (probability maps
beside some ground truths) are ignored. ``split``: ``train`` (Trainingset), ``test`` (Testset), a set folder's own
name, or ``None`` for both (sequence names are unique across the two sets).

FBMS ground truth marks each moving object with its own grey level or colour on a uniform background, which
is white in some files and black in others, so the rule for ``.pgm``/``.ppm`` masks is: the background is the
most frequent colour on the image border; every other pixel is salient (all moving objects, their union).
Other mask files (binary PNGs of converted copies) follow :func:`salvid.data.masks.load_mask`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from salvid.data.errors import MaskError
from salvid.data.layouts.base import DatasetError, VideoSequence, pair_frames_and_masks, subfolders
from salvid.data.masks import load_mask

SETS = {"train": "Trainingset", "test": "Testset"}
GT_SUFFIXES = (".pgm", ".ppm", ".png", ".bmp")


def fbms(root: str | Path, split: str | None = None) -> list[VideoSequence]:
    root = Path(root)
    set_names = list(SETS.values()) if split is None else [SETS.get(split, split)]
    sequences = []
    for set_name in set_names:
        set_dir = root / set_name
        if not set_dir.is_dir():
            raise DatasetError(f"{set_dir}: FBMS set folder not found (split {split!r}; expected {list(SETS)})")
        for name, seq_dir in subfolders(set_dir).items():
            gt_dir = seq_dir / "GroundTruth"
            if not gt_dir.is_dir():
                raise DatasetError(f"{gt_dir}: ground-truth folder missing")
            sequences.append(
                pair_frames_and_masks(name, seq_dir, [gt_dir], GT_SUFFIXES, fbms_mask, ignore_masks="(?i)prob")
            )
    return sequences


def fbms_mask(path: Path) -> np.ndarray:
    """Salient pixels of an FBMS ground-truth file as (H, W) uint8 {0, 1} (rule in the module docstring)."""
    path = Path(path)
    if path.suffix.lower() not in (".pgm", ".ppm"):
        return load_mask(path)
    try:
        with Image.open(path) as image:
            values = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise MaskError(f"{path}: cannot read mask ({error})") from error
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    colours, counts = np.unique(border, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return np.any(values != background, axis=-1).astype(np.uint8)
