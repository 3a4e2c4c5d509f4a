"""Albumentations pipelines applied with identical random parameters to every frame of a clip and its mask."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A  # salvid/__init__.py turns off its PyPI version check
import cv2
import numpy as np

from salvid.data.preprocess import halve_frame, halve_mask, resize_frame, resize_mask


@dataclass(frozen=True)
class Augmentation:
    """How strongly training clips are augmented (``data.augment``; its bounds are checked with the config,
    :mod:`salvid.runtime.schema`).

    Args:
        min_scale: the random crop keeps this fraction of the frame's area or more (1: no crop).
        flip: probability of a horizontal flip.
        colour: brightness, contrast and saturation jitter of up to this fraction (hue a tenth of it), applied to
            half the clips (0: none).
        zoom_out: on half the clips, the cropped clip shrinks onto a black canvas of the input size, at a random
            place, its sides scaled by a factor drawn uniformly from [1/zoom_out, 1], so objects also appear small
            (1: never). The colour jitter that follows applies to the canvas too.
    """

    min_scale: float = 0.6
    flip: float = 0.5
    colour: float = 0.2
    zoom_out: float = 1.0


class ClipTransform:
    """``(frames, mask) -> (frames, mask)``: one albumentations call per clip, frames as additional targets.

    Args:
        size: output (height, width), the network's input size.
        train: add augmentation (random resized crop, horizontal flip, colour jitter); else resize only. Both see
            a frame at least twice the input size as :func:`salvid.data.preprocess.halve_frame` shrinks it.
        in_frames: frames per clip.
        augment: the augmentation's strength (training only).
    """

    def __init__(self, size: tuple[int, int], train: bool, in_frames: int = 3,
                 augment: Augmentation = Augmentation()):
        h, w = int(size[0]), int(size[1])
        ops = []
        if train:
            a = augment
            ops = [
                # crops within 3/4..4/3 of the output's own aspect ratio, so wide video is not squashed
                A.RandomResizedCrop(size=(h, w), scale=(a.min_scale, 1.0), ratio=(0.75 * w / h, 1.333 * w / h),
                                    p=1.0),
                *([A.Sequential([A.RandomScale(scale_limit=(1 / a.zoom_out - 1, 0), p=1.0),
                                 A.PadIfNeeded(h, w, position="random", border_mode=cv2.BORDER_CONSTANT, p=1.0)],
                                p=0.5)] if a.zoom_out > 1 else []),
                A.HorizontalFlip(p=a.flip),
                A.ColorJitter(brightness=a.colour, contrast=a.colour, saturation=a.colour, hue=a.colour / 10,
                              p=0.5 if a.colour else 0.0),
            ]
        self.size = (h, w)
        self.train = train
        self.keys = [f"image{i}" for i in range(1, in_frames)]
        self.pipeline = A.Compose(ops, additional_targets={k: "image" for k in self.keys})

    def __call__(
        self, frames: list[np.ndarray], mask: np.ndarray, seed: int | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """``seed`` fixes the random parameters (reproducible whatever process applies it); None draws fresh ones."""
        if not self.train:  # the same resize as inference (salvid.data.preprocess)
            return [resize_frame(f, self.size) for f in frames], resize_mask(mask, self.size)
        # at the scale inference sees them: a frame at least twice the input size is averaged down first, so the
        # crops do not shrink it bilinearly (and alias it) more than inference does
        frames = [halve_frame(f, self.size) for f in frames]
        mask = halve_mask(mask, frames[0].shape)
        if seed is not None:
            self.pipeline.set_random_seed(seed)
        out = self.pipeline(image=frames[0], mask=mask, **dict(zip(self.keys, frames[1:], strict=True)))
        return [out["image"], *(out[k] for k in self.keys)], out["mask"]
