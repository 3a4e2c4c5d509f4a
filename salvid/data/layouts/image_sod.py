"""The ``image_sod`` layout: image salient-object sets, images and masks matched by file name.

    <root>/<images>/<name>.jpg     # DUTS-TR: DUTS-TR-Image/
    <root>/<masks>/<name>.png      # DUTS-TR: DUTS-TR-Mask/ (grey, anti-aliased edges: cut at half scale)

The folder names are options, so one reader serves the sets as distributed: DUTS-TR (the defaults), DUTS-TE
(``DUTS-TE-Image`` / ``DUTS-TE-Mask``), ECSSD (``images`` / ``ground_truth_mask``), HKU-IS (``imgs`` / ``gt``),
DUT-OMRON (``DUT-OMRON-image`` / ``pixelwiseGT-new-PNG``). MSRA10K keeps both in one folder (``Imgs``: ``.jpg``
images, ``.png`` masks): with ``images`` equal to ``masks``, ``.png`` files are the masks and the rest images.

Each image is a sequence of one frame named by its file stem, so the video pipeline takes it unchanged: the
stream repeats it into a clip. ``pseudo_clip: true`` moves each copy a little (:mod:`salvid.data.pseudo_clips`,
limits in ``motion``; ``paste``: the probability that a training clip sets its object on another still image);
``false`` keeps three identical copies. Image sets have no split files: the only split
is ``all``.

Pairing: every image needs a mask of the same stem (a missing one is an error naming the image and the mask
folder); a mask without an image, or two files of one stem, is an error naming the file(s). The folders are
listed once with ``os.scandir`` (names only): no pixel is read here, so 10,553 DUTS-TR names list in 0.7 s on a
busy 2-core machine. (The DataModule's setup then decodes each mask once to check it, as for every layout,
without keeping it; images are decoded only when streamed.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from salvid.data.layouts.base import DatasetError, VideoSequence, check_name
from salvid.data.pseudo_clips import PseudoClip
from salvid.data.sources import IMAGE_SUFFIXES

MASK_SUFFIX = ".png"  # every image SOD set above stores its masks as PNG


def image_sod(
    root: str | Path,
    split: str | None = None,
    images: str = "DUTS-TR-Image",
    masks: str = "DUTS-TR-Mask",
    pseudo_clip: bool = True,
    motion: Mapping[str, Any] | None = None,
    paste: float = 0.0,
) -> list[VideoSequence]:
    root = Path(root)
    if split is not None:
        raise DatasetError(f"{root}: an image set has no split {split!r}: use split all and choose the folders "
                           "with the layout options images and masks")
    if not isinstance(pseudo_clip, bool):
        raise DatasetError(f"pseudo_clip={pseudo_clip!r}: must be true (moving copies) or false (identical copies)")
    image_dir, mask_dir = root / images, root / masks
    same_folder = image_dir == mask_dir
    found_images = _by_stem(image_dir, exclude=MASK_SUFFIX if same_folder else None)
    found_masks = _by_stem(mask_dir, only=MASK_SUFFIX)
    if not found_images:
        raise DatasetError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    missing = sorted(set(found_images) - set(found_masks))
    if missing:
        raise DatasetError(f"{found_images[missing[0]]}: no mask {missing[0]}{MASK_SUFFIX} in {mask_dir} "
                           f"({len(missing)} image(s) without a mask); add the masks or remove those images")
    orphans = sorted(set(found_masks) - set(found_images))
    if orphans:
        raise DatasetError(f"{found_masks[orphans[0]]}: mask without an image in {image_dir} "
                           f"({len(orphans)} such mask(s)); the names must match")
    if paste and not pseudo_clip:
        raise DatasetError(f"paste={paste!r}: pastes pseudo-clips, and pseudo_clip is false; set pseudo_clip: true "
                           "or leave paste out")
    make_clip = PseudoClip(**_motion(motion), paste=paste) if pseudo_clip else None
    return [VideoSequence(stem, (found_images[stem],), (found_masks[stem],), make_clip=make_clip, still=True)
            for stem in sorted(found_images)]


def _motion(motion: Mapping[str, Any] | None) -> dict[str, float]:
    motion = dict(motion or {})
    known = ("shift", "rotate", "scale", "object_shift")
    unknown = [k for k in motion if k not in known]
    if unknown:
        raise DatasetError(f"motion.{unknown[0]}: not a motion limit (known: {list(known)})")
    return motion


def _by_stem(folder: Path, only: str | None = None, exclude: str | None = None) -> dict[str, Path]:
    """Image files of ``folder`` by stem (names only, no stat per file beyond what scandir gives)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found (set the layout options images / masks to the folder "
                           "names of this copy)")
    found: dict[str, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            suffix = os.path.splitext(entry.name)[1].lower()
            if entry.name.startswith(".") or suffix not in IMAGE_SUFFIXES or not entry.is_file():
                continue
            if (only is not None and suffix != only) or (exclude is not None and suffix == exclude):
                continue
            path = check_name(folder / entry.name)
            if path.stem in found:
                first, second = sorted([found[path.stem], path])
                raise DatasetError(f"{second}: same name as {first}; cannot tell which one to use")
            found[path.stem] = path
    return found
