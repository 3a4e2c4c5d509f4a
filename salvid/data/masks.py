"""Binary ground-truth masks from image files, whatever mode they were saved in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from salvid.data.errors import MaskError, SizeMismatchError

_PALETTE_MODES = ("P", "PA")
_VALUE_MODES = ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L")


def binarize(image: Image.Image) -> np.ndarray:
    """The salient pixels of a decoded mask image as an (H, W) uint8 array in {0, 1}.

    The one rule, by image mode:

    * palette (``P``, ``PA``): salient where the palette index is non-zero. Index 0 is the background in
      DAVIS-2017 / YouTube-VOS style multi-object masks, so every object counts (their union).
    * 1-bit (``1``): salient where the bit is set.
    * values (``L``, ``RGB``, 16-bit grey, with or without alpha): the alpha channel is ignored (DAVIS has
      masks saved with an opaque alpha), the value is the maximum over the colour channels (a coloured
      object on black counts). Salient where value > full_scale / 2, with full_scale = 1 when every value
      is 0 or 1 (a label mask) and the bit depth's maximum otherwise (255, or 65535 for 16-bit). So a
      0/255 mask with anti-aliased edges is cut at 127/128 and a 0/1 mask keeps every 1.

    Other modes (float, CMYK, ...) raise ``ValueError``.
    """
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8)
    if image.mode in _PALETTE_MODES:
        return (np.asarray(image.getchannel(0)) != 0).astype(np.uint8)
    if image.mode not in _VALUE_MODES:
        raise ValueError(f"unsupported mask mode {image.mode!r}")
    values = np.asarray(image)
    if image.mode in ("LA", "RGBA"):
        values = values[..., :-1]
    if values.ndim == 3:
        values = values.max(axis=-1)
    if values.max(initial=0) <= 1:
        full_scale = 1
    else:
        full_scale = 255 if values.dtype == np.uint8 else 65535
    return (values > full_scale / 2).astype(np.uint8)


def load_mask(path: str | Path) -> np.ndarray:
    """The mask at ``path`` as an (H, W) uint8 array in {0, 1}, by the rule of ``binarize``.

    A missing, empty, undecodable or unsupported file raises ``MaskError`` naming it.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise MaskError(f"{path}: cannot read mask (empty file, 0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()
            return binarize(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise MaskError(f"{path}: cannot read mask ({error})") from error


def check_same_size(
    frame_path: str | Path, frame_hw: tuple[int, int], mask_path: str | Path, mask_hw: tuple[int, int]
) -> None:
    """Raise ``SizeMismatchError`` naming both files when a mask's (H, W) differs from its frame's.

    ``frame_path`` may name a frame inside a video, e.g. ``"bear.mp4 frame 12"``.
    """
    if tuple(frame_hw) != tuple(mask_hw):
        raise SizeMismatchError(
            f"{mask_path}: mask is {mask_hw[0]}x{mask_hw[1]} (HxW) but its frame {frame_path} "
            f"is {frame_hw[0]}x{frame_hw[1]}"
        )
