"""The network's input, in one place: resize frames to the input size, then normalise on the device.

Training (the evaluation transform and the DataModule) and inference (``evaluate``, ``predict``) both use these
functions, so a map at inference is computed from exactly the input the network was validated on.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

# ImageNet statistics: the usual choice for natural video, and what the pretrained backbones expect.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def halvings(shape: tuple[int, ...], size: tuple[int, int]) -> int:
    """How many times a frame of ``shape`` (height, width, ...) can be halved and stay at least ``size`` (height,
    width) on both sides."""
    h, w = shape[:2]
    n = 0
    while h // 2 >= size[0] and w // 2 >= size[1]:
        h, w, n = h // 2, w // 2, n + 1
    return n


def halve_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` shrunk by 2, 4, 8, ... (pixel averaging) as far as it stays at least ``size`` on both sides.

    Bilinear resizing reads only the 2x2 pixels around each output pixel: shrinking a frame more than twice with it
    skips pixels and turns fine texture (water, foliage, a crowd) into noise that the network never saw in
    training. Averaging first and resizing the last factor of at most 2 bilinearly keeps the input close to a
    properly filtered one at any frame size; a frame less than twice the input size on either side is not touched.
    """
    n = halvings(frame.shape, size)
    if n == 0:
        return frame
    h, w = frame.shape[:2]
    return cv2.resize(frame, (w >> n, h >> n), interpolation=cv2.INTER_AREA)


def halve_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A mask shrunk to the ``shape`` (height, width, ...) :func:`halve_frame` shrank its frame to: each pixel is the
    mask's pixel at the centre of its averaged block (OpenCV's exact nearest neighbour), so the mask stays binary
    and on the frame's object."""
    h, w = shape[:2]
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 frame resized to ``size`` (height, width): :func:`halve_frame`, then bilinear (OpenCV, as
    albumentations' Resize)."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    return cv2.resize(halve_frame(frame, size), (w, h), interpolation=cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A mask resized to ``size`` (height, width), nearest neighbour so it stays binary."""
    h, w = size
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames with channels last, ``(..., H, W, 3)``, to normalised float ``(..., 3, H, W)`` channels-first
    at the same device; a batch of clips ``(N, T, H, W, 3)`` becomes ``(N, T, 3, H, W)``."""
    x = frames.movedim(-1, -3).float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std


# normalise()'s value of every uint8 level per channel, computed by the same float32 operations
_LEVELS = torch.arange(256, dtype=torch.uint8).view(256, 1, 1).expand(256, 1, 3)
_TABLE = np.ascontiguousarray(normalise(_LEVELS).movedim(-3, -1).numpy().reshape(1, 256, 3))


def normalise_frame(frame: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame ``(H, W, 3)`` normalised as :func:`normalise` does, bit for bit, but channels last and by
    table lookup (``cv2.LUT``): several times faster on the CPU, where inference prepares frames beside other
    work."""
    return cv2.LUT(frame, _TABLE)
