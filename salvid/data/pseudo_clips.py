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

``object_shift`` (0: off) also moves the object against its background, as objects move in video: frame
``t + o`` shows the masked object shifted by ``o * object_step`` (drawn per sample within the limit, a fraction
of the image side) over the background, before the camera motion above. The centre frame keeps the image as
it is. The background the object uncovers is filled from its surroundings (OpenCV's Telea inpainting at half
size), so no copy of the object stays behind.

``paste`` (a probability, 0: never) sets the object on another still image of the training stream (``scenes``,
drawn at random, now and then the image itself) instead of its own scene: that image's own object is inpainted
away the same way, the object's mask edge is softened over about a pixel, and the mask is unchanged. Evaluation
streams hand no scenes, so their clips show the image as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A  # salvid/__init__.py turns off its PyPI version check
import cv2
import numpy as np

from salvid.data.errors import DatasetError
from salvid.data.inpainting import remove_object
from salvid.data.masks import load_mask
from salvid.data.sources import ImageFolder


@dataclass(frozen=True)
class PseudoClip:
    """``(frames, mask, seed) -> (frames, mask)``: each copy of a still frame moved, the mask with the centre.

    Picklable (plain fields), so dataloader workers receive it with the sequences.
    """

    shift: float = 0.03
    rotate: float = 2.0
    scale: float = 0.03
    object_shift: float = 0.0
    paste: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.paste, bool) or not isinstance(self.paste, int | float) or not 0 <= self.paste <= 1:
            raise DatasetError(f"paste={self.paste!r}: must be a probability in [0, 1] (0: never, 1: every "
                               "training clip)")
        for key in ("shift", "rotate", "scale", "object_shift"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or value < 0:
                raise DatasetError(f"motion.{key}={value!r}: must be a number >= 0")
        if max(self.shift, self.scale, self.object_shift) >= 0.5:
            raise DatasetError(f"motion: shift={self.shift}, scale={self.scale}, object_shift={self.object_shift}: "
                               "a pseudo-clip's motion must be small (each < 0.5; a few hundredths is typical)")

    def __call__(self, frames: list[np.ndarray], mask: np.ndarray, seed: int,
                 scenes: Sequence[tuple[Path, Path]] = ()) -> tuple[list[np.ndarray], np.ndarray]:
        """``scenes``: (image, mask) files to paste onto (the training stream's still images; none: no paste)."""
        rng = np.random.default_rng(seed)
        limits = np.array([self.shift, self.shift, self.rotate, self.scale])
        base, step = rng.uniform(-limits, limits), rng.uniform(-limits, limits)
        centre = len(frames) // 2
        pasted = self.paste > 0 and len(scenes) > 0 and rng.random() < self.paste and mask.any()
        if pasted:
            image, mask_of = scenes[rng.integers(len(scenes))]
            background = _without_object(_resized(ImageFolder([image]).read([0])[0], mask.shape),
                                         _resized(load_mask(mask_of), mask.shape, cv2.INTER_NEAREST))
            alpha = cv2.GaussianBlur((mask > 0).astype(np.float32), (5, 5), 1.0)[..., None]
            frames = [_blend(alpha, frames[centre], background)] * len(frames)
        if self.object_shift > 0 and mask.any():
            object_step = rng.uniform(-self.object_shift, self.object_shift, 2)
            frames = _move_object(frames[centre], mask, object_step, len(frames), background if pasted else None)
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


def _move_object(image: np.ndarray, mask: np.ndarray, step: np.ndarray, count: int,
                 background: np.ndarray | None = None) -> list[np.ndarray]:
    """``count`` frames of ``image`` with its ``mask``ed object shifted by ``(i - centre) * step`` (fractions of the
    sides) over ``background`` (default: ``image`` inpainted where the object stands)."""
    height, width = mask.shape
    background = _without_object(image, mask) if background is None else background
    centre = count // 2
    frames = []
    for i in range(count):
        if i == centre:
            frames.append(image)
            continue
        dx, dy = (i - centre) * step * (width, height)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        obj = cv2.warpAffine(image, shift, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        alpha = cv2.warpAffine((mask > 0).astype(np.float32), shift, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        frames.append(_blend(alpha, obj, background))
    return frames


def _blend(alpha: np.ndarray, front: np.ndarray, back: np.ndarray) -> np.ndarray:
    return (alpha * front + (1 - alpha) * back + 0.5).astype(np.uint8)


def _resized(image: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    return image if image.shape[:2] == size else cv2.resize(image, (size[1], size[0]), interpolation=interpolation)


def _without_object(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # a few pixels' growth and a half-size inpainting: fast enough to run per clip in the data loader
    return remove_object(image, mask, grow=3, radius=3, scale=0.5)


def _affine(dx: float, dy: float, degrees: float, scale: float) -> A.Affine:
    # Reflected borders: no black band whose edge would move with the clip and give the motion away.
    return A.Affine(translate_percent={"x": (dx, dx), "y": (dy, dy)}, rotate=(degrees, degrees),
                    scale=(1.0 + scale, 1.0 + scale), border_mode=cv2.BORDER_REFLECT_101, p=1.0)
