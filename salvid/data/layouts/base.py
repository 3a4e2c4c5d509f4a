"""What every dataset layout produces: a list of sequences, each frames + per-frame masks.

Also the listing rules every frame-folder layout shares, so each layout module only says where its files are:

* Frames and masks are paired by **frame number**: the last run of digits in the file name, after dropping a
  ``_gt`` suffix (``bear_00012.jpg`` <-> ``00012.png`` <-> ``bear_00012_gt.ppm``). Names without digits pair by
  their whole stem. Frames are ordered by that number, so unpadded names (``1.png``, ``10.png``) keep time order.
* A frame without a mask is kept as temporal context but is never a target (counted at setup).
* A mask without a frame, two files with the same frame number, or a file name that is not valid UTF-8 is an
  error naming the file: each means the listing cannot be trusted to pair the right files.
* A split file naming a sequence that is not on disk is an error naming the split file and the sequences.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salvid.data.errors import DatasetError
from salvid.data.masks import load_mask
from salvid.data.sources import IMAGE_SUFFIXES, FrameSource, ImageFolder, frame_key, frame_order, open_video

# One mask file, several (objects stored as separate files: the salient mask is their union), or none.
MaskEntry = Path | tuple[Path, ...] | None


# what a copy without split files needs: every sequence trains, and training sequences are held out
NO_SPLIT_FILES = ("data.splits.train=all data.splits.val=null data.splits.test=null data.val_holdout=N "
                  "data.test_holdout=N")


class MissingSplitError(DatasetError):
    """A split the config asks for has no split file in this copy; ``present``: the splits it has. The message
    says what to do without knowing which key asked; :func:`salvid.data.splits.split_sequences` names the key."""

    def __init__(self, message: str, root: Path, split: str, looked: str, present: list[str]):
        super().__init__(message)
        self.root, self.split, self.looked, self.present = root, split, looked, present

    def for_key(self, key: str, holdout: str | None = None) -> MissingSplitError:
        """The same error, saying that config key ``key`` asks for the split; ``holdout``: the key that holds
        training sequences out instead (``data.test_holdout``), where that is an alternative."""
        options = []
        if self.present:
            options.append(f"set {key} to {'one of them' if len(self.present) > 1 else self.present[0]}")
        if holdout:
            options.append(f"hold training sequences out instead with {key}=null {holdout}=N")
        if key in ("data.split", "data.splits.train"):
            options.append(f"use every sequence with {key}=all")
        has = f"this copy has the split(s) {self.present}" if self.present else "this copy has no split files"
        if not self.present and key.startswith("data.splits."):
            options = [f"use every sequence and hold some out for validation and test with {NO_SPLIT_FILES}"]
        return MissingSplitError(f"{self.root}: no split file for split {self.split!r}, which {key}={self.split} asks "
                                 f"for (looked for {self.looked}); {has}: {', or '.join(options)}", self.root,
                                 self.split, self.looked, self.present)


class SkippedInput(UserWarning):
    """Something a layout skipped by its documented rule; setup counts these and reports them."""


@dataclass(frozen=True)
class VideoSequence:
    """One video: where its frames are and which frames carry a ground-truth mask.

    ``frames`` is a video file or the ordered frame images; ``masks[i]`` is the mask of frame ``i`` (one file or
    several whose union is the salient mask) or ``None`` where that frame is not annotated (e.g. FBMS): such
    frames feed neighbours but are never targets. ``weight`` is how often the training stream visits the
    sequence's frames per epoch (see :mod:`salvid.data.layouts.concat`). ``read_mask`` decodes one mask file to
    (H, W) uint8 {0, 1}; layouts whose masks follow another convention (FBMS colour masks) pass their own.
    ``make_clip``: for a still image (one frame, repeated into a clip by the stream), ``f(frames, mask, seed,
    scenes) -> (frames, mask)`` applied to every clip before augmentation (:class:`salvid.data.pseudo_clips.PseudoClip`;
    ``scenes``: the (image, mask) files of the training stream's still images, empty in evaluation).
    ``train_only``: hold-outs and folds never take this sequence (a ``concat`` entry's ``train_only: true``).
    ``still``: a still image (image salient-object sets), not a video; records count these rather than name them.
    """

    name: str
    frames: Path | tuple[Path, ...]
    masks: tuple[MaskEntry, ...]
    weight: float = 1.0
    read_mask: Callable[[Path], np.ndarray] = load_mask  # module-level, so dataloader workers can pickle it
    make_clip: Callable[..., tuple[list[np.ndarray], np.ndarray]] | None = None
    train_only: bool = False
    still: bool = False

    def open(self) -> FrameSource:
        if isinstance(self.frames, Path):
            return open_video(self.frames)
        return ImageFolder(list(self.frames))

    @property
    def annotated_frames(self) -> list[int]:
        """Indices of the frames that have a mask."""
        return [i for i, m in enumerate(self.masks) if m is not None]

    def salient_mask(self, index: int) -> np.ndarray:
        """The salient mask of frame ``index`` as (H, W) uint8 {0, 1}."""
        return load_target(self.masks[index], self.read_mask)

    def frame_name(self, index: int) -> str:
        """The file that holds frame ``index``, for messages."""
        if isinstance(self.frames, Path):
            return f"{self.frames} frame {index}"
        return str(self.frames[index])


def load_target(entry: MaskEntry, read_mask: Callable[[Path], np.ndarray] = load_mask) -> np.ndarray:
    """The salient mask of one mask entry: one file, or the union of several object masks."""
    if entry is None:
        raise ValueError("frame has no mask")
    paths = (entry,) if isinstance(entry, Path) else entry
    union = read_mask(paths[0])
    for path in paths[1:]:
        mask = read_mask(path)
        if mask.shape != union.shape:
            raise DatasetError(
                f"{path}: object mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but {paths[0]} of the same frame "
                f"is {union.shape[0]}x{union.shape[1]}"
            )
        union |= mask
    return union


def read_split(path: Path) -> list[str]:
    """VideoSequence names of a split file, one per line (blank lines and # comments ignored).

    A line holding paths (DAVIS-2016: ``/JPEGImages/480p/bear/00000.jpg /Annotations/...``) names the
    sequence of its first path's folder; a leading ``*`` (SegTrackV2 marks multi-object sequences so) is dropped.
    Names keep their first-seen order.
    """
    if not path.is_file():
        present = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        has = f"this copy has the split(s) {present}" if present else "this copy has no split files"
        raise MissingSplitError(f"{path}: split file not found; {has}: name one of them, or use every sequence (all)",
                                path.parent, path.stem, path.name, present)
    names: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        first = line.split()[0]
        name = first.strip("/").split("/")[-2] if "/" in first else first.lstrip("*")
        names[name] = None
    return list(names)


def select_sequences(available: Iterable[str], split_file: Path | None, where: Path) -> list[str]:
    """The sequence names of a split (all of ``available``, sorted, when ``split_file`` is None)."""
    available = sorted(available)
    if split_file is None:
        if not available:
            raise DatasetError(f"{where}: no sequences found")
        return available
    names = read_split(split_file)
    missing = [n for n in names if n not in set(available)]
    if missing:
        raise DatasetError(f"{split_file}: names sequences missing from {where}: {missing}")
    if not names:
        raise DatasetError(f"{split_file}: split file lists no sequences")
    return names


def check_name(path: Path) -> Path:
    """``path`` unchanged, or an error if its file name is not valid UTF-8 (it could not be named in logs)."""
    try:
        os.fsencode(path.name).decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(
            f"{ascii(str(path.parent))}: file name {ascii(path.name)} is not valid UTF-8; rename it "
            "(e.g. `convmv -f latin1 -t utf8`)"
        ) from None
    return path


def subfolders(folder: Path) -> dict[str, Path]:
    """Sub-folders of ``folder`` by name (hidden ones ignored)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    return {p.name: p for p in map(check_name, sorted(folder.iterdir())) if p.is_dir() and not p.name.startswith(".")}


def images_by_frame(
    folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, ignore: str | None = None
) -> dict[int | str, Path]:
    """Image files of ``folder`` keyed by frame number; two files for one frame is an error naming both.

    ``ignore``: a regular expression; files whose name it finds are not listed.
    """
    found: dict[int | str, Path] = {}
    for path in map(check_name, sorted(folder.iterdir())):
        if path.suffix.lower() not in suffixes or path.name.startswith(".") or not path.is_file():
            continue
        if ignore is not None and re.search(ignore, path.name):
            continue
        key = frame_key(path)
        if key in found:
            raise DatasetError(f"{path}: same frame number as {found[key]}; cannot tell which belongs to frame {key}")
        found[key] = path
    return found


def pair_frames_and_masks(
    name: str,
    frame_dir: Path,
    mask_dirs: Iterable[Path],
    mask_suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    read_mask: Callable[[Path], np.ndarray] = load_mask,
    ignore_masks: str | None = None,
) -> VideoSequence:
    """A sequence from a frame folder and one or more mask folders (several: one per object, unioned)."""
    frames = images_by_frame(frame_dir)
    if not frames:
        raise DatasetError(f"{frame_dir}: no frames ({', '.join(IMAGE_SUFFIXES)})")
    mask_dirs = list(mask_dirs)
    per_object = [images_by_frame(d, mask_suffixes, ignore_masks) for d in mask_dirs]
    for masks in per_object:
        orphans = sorted((k for k in masks if k not in frames), key=frame_order)
        if orphans:
            raise DatasetError(
                f"{masks[orphans[0]]}: mask without a frame in {frame_dir} "
                f"({len(orphans)} such mask(s), frame numbers {orphans[:5]})"
            )
    keys = sorted(frames, key=frame_order)
    entries: list[MaskEntry] = []
    for key in keys:
        files = tuple(m[key] for m in per_object if key in m)
        entries.append(None if not files else files[0] if len(files) == 1 else files)
    if not any(e is not None for e in entries):
        raise DatasetError(f"{', '.join(map(str, mask_dirs)) or frame_dir}: no masks for the frames in {frame_dir}")
    return VideoSequence(name, tuple(frames[k] for k in keys), tuple(entries), read_mask=read_mask)


def skip(message: str) -> None:
    """Report a documented skip; ``SaliencyDataModule.setup`` counts these and logs a summary."""
    warnings.warn(message, SkippedInput, stacklevel=2)
