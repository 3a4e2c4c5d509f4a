"""The ``davsod`` layout: one folder per sequence holding a frame folder and a mask folder.

    <root>/<seq>/Imgs/0001.jpg
    <root>/<seq>/GT_object_level/0001.png

This is how DAVSOD (Fan et al., CVPR 2019) is distributed, and how its benchmark release repackages ViSal,
FBMS, SegTrack-V2, UVSD, MCL and DAVIS for video salient-object detection. Other datasets of this shape
(ViSal-style ``<seq>/GroundTruth``) set ``frames_dir`` / ``masks_dir``.

The ``usvd`` layout name is this reader too: the paper's USVD is the 18-video set of Liu et al. (TCSVT 2017,
called UVSD by its authors), obtainable today in the DAVSOD benchmark release in exactly this shape. Mask folders may be sparse (DAVSOD's
FBMS annotates every 20th frame): frames without a mask are context, not targets. ``split`` names
``<root>/<split>.txt`` (sequence names); ``None`` takes every sequence folder.
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


def davsod(
    root: str | Path, split: str | None = None, frames_dir: str = "Imgs", masks_dir: str = "GT_object_level"
) -> list[VideoSequence]:
    root = Path(root)
    folders = {n: p for n, p in subfolders(root).items() if (p / frames_dir).is_dir()}
    if not folders:
        raise DatasetError(f"{root}: no sequence folders with a {frames_dir}/ sub-folder (<root>/<seq>/{frames_dir}/)")
    split_file = None if split is None else root / f"{split}.txt"
    names = select_sequences(folders, split_file, root)
    sequences = []
    for name in names:
        mask_dir = folders[name] / masks_dir
        if not mask_dir.is_dir():
            raise DatasetError(f"{mask_dir}: mask folder missing for {folders[name] / frames_dir}")
        sequences.append(pair_frames_and_masks(name, folders[name] / frames_dir, [mask_dir]))
    return sequences
