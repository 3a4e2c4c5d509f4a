"""The ``davis2016`` layout: DAVIS-2016 and DAVIS-2017 as their authors distribute them.

    <root>/JPEGImages/<resolution>/<seq>/00000.jpg
    <root>/Annotations/<resolution>/<seq>/00000.png
    <root>/ImageSets/<resolution>/{train,val,trainval}.txt   # DAVIS-2016: "<frame path> <mask path>" per line
    <root>/ImageSets/2017/{train,val}.txt                    # DAVIS-2017: one sequence name per line

``resolution`` is the folder name: ``480p``, ``1080p`` (DAVIS-2016), ``Full-Resolution`` (DAVIS-2017), or any
other (e.g. ``240p`` for a resized copy). The split file is the first of ``ImageSets/<resolution>/<split>.txt``,
``ImageSets/2017/<split>.txt``, ``ImageSets/2016/<split>.txt``, ``ImageSets/480p/<split>.txt`` that exists, so
the 2016 split files also serve the 1080p/Full-Resolution folders. Only the sequence names of a split file are
used; frames are listed from the folders. DAVIS-2017 masks are palette images with one index per object: the
salient mask is every non-zero index (the union of objects, by :func:`salvid.data.masks.binarize`).
"""

from __future__ import annotations

from pathlib import Path

from salvid.data.layouts.base import (
    DatasetError,
    MissingSplitError,
    VideoSequence,
    pair_frames_and_masks,
    select_sequences,
    subfolders,
)

SPLIT_FOLDERS = ("2017", "2016", "480p")


def require_resolution_folder(root: Path, resolution: str, key: str) -> Path:
    """``root``'s frame folder at ``resolution``; without one, an error saying which resolution folders the copy
    has and which setting (``key``) chooses among them."""
    frames_root = root / "JPEGImages" / resolution
    if not frames_root.is_dir():
        found = sorted(p.name for p in (root / "JPEGImages").glob("*") if any(q.is_dir() for q in p.glob("*")))
        hint = f"; this copy has {found}: set {key}=<one of them>" if found else \
            ": the root must be a DAVIS-layout dataset (JPEGImages/<resolution>/<sequence>/)"
        raise DatasetError(f"{frames_root}: no such frame folder{hint}")
    return frames_root


def davis2016(root: str | Path, split: str | None = None, resolution: str = "480p") -> list[VideoSequence]:
    root = Path(root)
    frames_root = require_resolution_folder(root, resolution, "data.resolution")
    masks_root = root / "Annotations" / resolution
    names = select_sequences(subfolders(frames_root), _split_file(root, resolution, split), frames_root)
    sequences = []
    for name in names:
        mask_dir = masks_root / name
        if not mask_dir.is_dir():
            raise DatasetError(f"{mask_dir}: mask folder missing for {frames_root / name}")
        sequences.append(pair_frames_and_masks(name, frames_root / name, [mask_dir], (".png",)))
    return sequences


def _split_file(root: Path, resolution: str, split: str | None) -> Path | None:
    if split is None:
        return None
    candidates = list(dict.fromkeys(root / "ImageSets" / folder / f"{split}.txt" for folder in (resolution, *SPLIT_FOLDERS)))
    for path in candidates:
        if path.is_file():
            return path
    present = sorted({p.stem for p in (root / "ImageSets").glob("*/*.txt")})
    looked = ", ".join(c.relative_to(root).as_posix() for c in candidates)
    if present:
        fix = (f"this copy has the split(s) {present}: name one where the config asks for {split!r}, or use all "
               "sequences (all)")
    else:
        fix = "this copy has no split files: use all sequences (data.splits.train=all)"
    raise MissingSplitError(f"{root}: no split file for split {split!r} (looked for {looked}); {fix}, and hold "
                            "sequences out of it for validation and test with data.val_holdout=N data.test_holdout=N",
                            root, split, looked, present)
