"""A small-object copy of a DAVIS-layout dataset: each sequence's objects, shrunk, moving over another sequence.

Clips with a small object (a rider far away, a ball) are where video saliency models fail most, and few such
clips carry a licence that allows sharing them. This makes them from a copy you have. For each sequence ``A``
(sorted by name, or in the order given) and the next one ``B`` (the last one's next is the first):

- the scene is ``B``'s first frame with its salient object removed (OpenCV's Telea inpainting of its mask,
  grown by 2% of the frame height);
- a camera pans across it: a window of 80% of its width and height, vertically centred, moves at a constant
  speed from its left edge to its right edge over the clip;
- into each view, ``A``'s frame and salient mask, area-resampled to ``scale`` times the view's size, are pasted
  at the centre through the resampled mask, whose soft edge blends the two, for each of ``A``'s frames::

    <out>/JPEGImages/<resolution>/<A>-on-<B>/<A's frame>.jpg   JPEG quality 95, 80% of B's width and height
    <out>/Annotations/<resolution>/<A>-on-<B>/<A's frame>.png  the shrunk mask: 255 where it covers half a pixel

The object keeps its own motion, shrunk, over a scene that moves with the camera, so neither motion nor
position alone gives it away. Two traces of the making remain, and a model may use either: the paste's seam,
and the smooth patch where ``B``'s object was (still, like any part of the scene). Score the copy with
``evaluate data=davis2016 data.root=OUT data.resolution=<resolution> data.split=all``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from salvid.data.acquire.copies import davis_frames_root, start_copy
from salvid.data.errors import DataError
from salvid.data.layouts import list_sequences
from salvid.data.layouts.base import VideoSequence
from salvid.errors import ConfigError

READ_BATCH = 32  # frames decoded at a time: bounded memory for long, high-resolution sequences
JPEG_QUALITY = 95
GROW = 0.02  # the removed object's mask grows by this share of the frame height, so no rim of it is left
INPAINT_RADIUS = 5
VIEW = 0.8  # the panning camera's window, a share of the scene's width and height


def remove_object(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``frame`` with the object of ``mask`` (H, W) {0, 1} inpainted from its surroundings."""
    size = 2 * max(1, round(frame.shape[0] * GROW)) + 1
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((size, size), np.uint8))
    return cv2.inpaint(np.ascontiguousarray(frame), grown, INPAINT_RADIUS, cv2.INPAINT_TELEA)


def paste_small(background: np.ndarray, frame: np.ndarray, mask: np.ndarray, scale: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """``frame``'s masked object at ``scale`` times ``background``'s size, centred on it; returns the composite
    (H, W, 3) uint8 and its mask (H, W) uint8 0/255."""
    height, width = background.shape[:2]
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    y, x = (height - h) // 2, (width - w) // 2
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)[..., None]
    composite = background.copy()
    region = composite[y:y + h, x:x + w].astype(np.float32)
    composite[y:y + h, x:x + w] = np.rint(alpha * small + (1 - alpha) * region).astype(np.uint8)
    target = np.zeros((height, width), np.uint8)
    target[y:y + h, x:x + w] = np.where(alpha[..., 0] >= 0.5, 255, 0)
    return composite, target


def panned_views(scene: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` views of ``scene`` through a window of ``VIEW`` of its size panning from left to right."""
    height, width = scene.shape[:2]
    h, w = max(1, round(height * VIEW)), max(1, round(width * VIEW))
    y = (height - h) // 2
    return [scene[y:y + h, x:x + w] for x in np.rint(np.linspace(0, width - w, count)).astype(int)]


def _write_pair(a: VideoSequence, b: VideoSequence, scale: float, frame_dir: Path, mask_dir: Path) -> int:
    source_a = a.open()
    for seq, indices in ((a, range(len(source_a))), (b, [0])):
        for i in indices:
            if seq.masks[i] is None:
                raise DataError(f"{seq.frame_name(i)}: has no mask; small-objects takes only sequences whose "
                                "every frame is annotated: leave this one out of --sequences")
    scene = remove_object(b.open().read([0])[0], b.salient_mask(0))
    views = panned_views(scene, len(source_a))
    for start in range(0, len(source_a), READ_BATCH):
        indices = range(start, min(start + READ_BATCH, len(source_a)))
        for i, frame in zip(indices, source_a.read(indices), strict=True):
            composite, target = paste_small(views[i], frame, a.salient_mask(i), scale)
            stem = a.frames[i].stem if not isinstance(a.frames, Path) else f"{i:05d}"
            Image.fromarray(composite).save(frame_dir / f"{stem}.jpg", quality=JPEG_QUALITY)
            Image.fromarray(target).save(mask_dir / f"{stem}.png")
    return len(source_a)


def small_objects(root: str | Path, out: str | Path, scale: float = 1 / 3, resolution: str = "480p",
                  sequences: Sequence[str] | None = None,
                  on_sequence: Callable[[str, int], None] | None = None) -> int:
    """Write ``out`` from the DAVIS-layout dataset at ``root``; returns the number of clips written."""
    root, out = Path(root), Path(out)
    if not 0 < scale < 1:
        raise ConfigError(f"--scale {scale}: must be between 0 and 1 (0.33 shrinks each side to a third)")
    partial = start_copy(root, out)
    davis_frames_root(root, resolution)
    available = {seq.name: seq for seq in list_sequences("davis2016", root, "all", resolution=resolution)}
    names = list(sequences) if sequences else sorted(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(f"--sequences {unknown[0]}: not a sequence of {root / 'JPEGImages' / resolution}; "
                          f"it has {', '.join(sorted(available))}")
    if len(set(names)) < 2:
        raise ConfigError("--sequences: give at least two different sequences (each one's objects move over the "
                          "next one's frames)")
    for a, b in zip(names, names[1:] + names[:1], strict=True):
        clip = f"{a}-on-{b}"
        frame_dir = partial / "JPEGImages" / resolution / clip
        mask_dir = partial / "Annotations" / resolution / clip
        frame_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        count = _write_pair(available[a], available[b], scale, frame_dir, mask_dir)
        if on_sequence is not None:
            on_sequence(clip, count)
    partial.rename(out)
    return len(names)
