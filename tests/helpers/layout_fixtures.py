"""Tiny datasets in each distributed layout, written into a test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32


def frame(i: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A flat colour per frame index, so frames stay recognisable through JPEG compression."""
    colour = [(40 + 37 * i) % 220, (90 + 53 * i) % 220, (10 + 71 * i) % 220]
    return np.broadcast_to(np.array(colour, np.uint8), (*size, 3)).copy()


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a.astype(int) - b.astype(int)).max() <= 8)


def box_mask(i: int, size: tuple[int, int] = (H, W), empty: bool = False) -> np.ndarray:
    """0/255 mask with a box that moves with ``i``."""
    mask = np.zeros(size, np.uint8)
    if not empty:
        mask[4:12, 2 + i : 10 + i] = 255
    return mask


def save(array: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def save_palette(indices: np.ndarray, path: Path) -> Path:
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def davis(root: Path, sequences: dict[str, int], resolution: str = "480p", palette: bool = False) -> Path:
    """DAVIS-2016 style: frames, masks and ImageSets/<res>/train.txt with "<frame> <mask>" lines (all but the
    last sequence in train, the last in val); ``palette``: DAVIS-2017 style two-object palette masks."""
    names = list(sequences)
    for name, n in sequences.items():
        for i in range(n):
            save(frame(i), root / "JPEGImages" / resolution / name / f"{i:05d}.jpg")
            mask_path = root / "Annotations" / resolution / name / f"{i:05d}.png"
            if palette:
                indices = np.zeros((H, W), np.uint8)
                indices[2:6, 2:6] = 1
                indices[10:14, 20:24] = 2
                save_palette(indices, mask_path)
            else:
                save(box_mask(i), mask_path)
    for split, seqs in (("train", names[:-1]), ("val", names[-1:])):
        lines = [
            f"/JPEGImages/{resolution}/{s}/{i:05d}.jpg /Annotations/{resolution}/{s}/{i:05d}.png"
            for s in seqs
            for i in range(sequences[s])
        ]
        (root / "ImageSets" / resolution).mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / resolution / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
