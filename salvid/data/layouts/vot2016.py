"""The ``vot2016`` layout: VOT2016 sequences with the pixel-wise segmentation ground truth of Vojir & Matas.

VOT2016 itself (vot2016.zip from the VOT challenge, same 60 sequences as VOT2015) gives frames and bounding
boxes; its segmentation masks are a separate release (http://cmp.felk.cvut.cz/~vojirtom/dataset/votseg/),
one mask per frame. Assumed layout after extracting both (``prepare vot2016`` puts them so):

    <root>/<seq>/00000001.jpg                     # VOT2016 frames (a newer toolkit puts them in <seq>/color/)
    <root>/<seq>/groundtruth.txt                  # boxes: ignored
    <root>/<masks_dir>/<seq>/00000001.png         # segmentation masks, same frame numbers (default "segmentation")

Frames and masks pair by frame number; frames without a mask are context only. ``split`` names
``<root>/<split>.txt`` (sequence names; VOT's own ``list.txt`` works as ``split=list``); ``None`` takes every
sequence that has frames and a mask folder.
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


def vot2016(root: str | Path, split: str | None = None, masks_dir: str = "segmentation") -> list[VideoSequence]:
    root = Path(root)
    masks_root = root / masks_dir
    if not masks_root.is_dir():
        raise DatasetError(f"{masks_root}: segmentation mask folder not found (set masks_dir)")
    frame_dirs = {
        name: path / "color" if (path / "color").is_dir() else path
        for name, path in subfolders(root).items()
        if path != masks_root
    }
    split_file = None if split is None else root / f"{split}.txt"
    names = select_sequences(subfolders(masks_root), split_file, masks_root)
    missing = [n for n in names if n not in frame_dirs]
    if missing:
        raise DatasetError(f"{masks_root}: masks for sequences with no frame folder in {root}: {missing}")
    return [pair_frames_and_masks(name, frame_dirs[name], [masks_root / name]) for name in names]
