"""Pseudo-clips: a still image entered into a video network as a short clip with a small random motion.

A still image is a sequence of one frame, so the triplet stream repeats it into ``in_frames`` identical copies
(edge padding). :class:`PseudoClip` then moves each copy by its own affine transform: frame ``t + o`` (offset
``o`` from the centre) gets ``base + o * step``, where ``base`` and ``step`` are drawn per sample, each
component uniformly within the limits below. The centre frame moves by ``base``, and its mask by exactly the
same transform, so the target stays aligned with the centre frame. Training on such clips (and on the still
copies, ``pseudo_clip: false``) teaches the temporal fusion that a salient object need not move.

Limits, per step and for the base offset alike: ``shift`` (fraction of the image side), ``rotate`` (degrees),
``scale`` (relative change). The defaults are a few pixels at the network's input size: camera shake, not a
scene change.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A  # salvid/__init__.py turns off its PyPI version check
import cv2
import numpy as np

from salvid.data.layouts.base import DatasetError


@dataclass(frozen=True)
class PseudoClip:
    """``(frames, mask, seed) -> (frames, mask)``: each copy of a still frame moved, the mask with the centre.

    Picklable (plain fields), so dataloader workers receive it with the sequences.
    """

    shift: float = 0.03
    rotate: float = 2.0
    scale: float = 0.03

    def __post_init__(self) -> None:
        for key in ("shift", "rotate", "scale"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or value < 0:
                raise DatasetError(f"motion.{key}={value!r}: must be a number >= 0")
        if self.shift >= 0.5 or self.scale >= 0.5:
            raise DatasetError(f"motion: shift={self.shift}, scale={self.scale}: a pseudo-clip's motion must be "
                               "small (each < 0.5; a few hundredths is typical)")

    def __call__(self, frames: list[np.ndarray], mask: np.ndarray, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
        rng = np.random.default_rng(seed)
        limits = np.array([self.shift, self.shift, self.rotate, self.scale])
        base, step = rng.uniform(-limits, limits), rng.uniform(-limits, limits)
        centre = len(frames) // 2
        moved = []
        for i, frame in enumerate(frames):
            motion = _affine(*(base + (i - centre) * step))
            if i == centre:
                out = motion(image=frame, mask=mask)
                moved.append(out["image"])
                mask = out["mask"]
            else:
                moved.append(motion(image=frame)["image"])
        return moved, mask


def _affine(dx: float, dy: float, degrees: float, scale: float) -> A.Affine:
    # Reflected borders: no black band whose edge would move with the clip and give the motion away.
    return A.Affine(translate_percent={"x": (dx, dx), "y": (dy, dy)}, rotate=(degrees, degrees),
                    scale=(1.0 + scale, 1.0 + scale), border_mode=cv2.BORDER_REFLECT_101, p=1.0)
