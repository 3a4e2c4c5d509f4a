"""Removing an object from an image: its mask grown a little, the hole filled from the surroundings by OpenCV's
Telea inpainting. Used where salvid makes training or test data of its own (pasted small objects, pseudo-clips)."""

from __future__ import annotations

import cv2
import numpy as np


def remove_object(frame: np.ndarray, mask: np.ndarray, grow: int, radius: int = 5, scale: float = 1.0) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with the object of ``mask`` (H, W, nonzero inside) inpainted.

    ``grow``: pixels the mask grows by first, so no rim of the object is left. ``radius``: the pixels around
    each inpainted point that fill it (OpenCV suggests 3 to 5). ``scale`` < 1 inpaints a copy that much smaller
    and fills only the hole from it: inpainting time grows with the hole's area."""
    hole = cv2.dilate((mask > 0).astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    frame = np.ascontiguousarray(frame)
    if scale == 1.0:
        return cv2.inpaint(frame, hole, radius, cv2.INPAINT_TELEA)
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    filled = cv2.resize(cv2.inpaint(small, small_hole, radius, cv2.INPAINT_TELEA), (frame.shape[1], frame.shape[0]),
                        interpolation=cv2.INTER_LINEAR)
    return np.where(hole[..., None] > 0, filled, frame)
