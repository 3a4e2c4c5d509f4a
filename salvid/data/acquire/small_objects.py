"""A small-object copy of a DAVIS-layout dataset: each sequence's object, shrunk, moving in another one's scene.

Clips with a small object (a rider far away, a ball) are where video saliency models fail most, and few such
clips carry a licence that allows sharing them. This makes them from a copy you have. For each sequence ``A``
(sorted by name, or in the order given) and the next one ``B`` (the last one's next is the first):

- the scene is ``B``'s first frame with its salient object removed (OpenCV's Telea inpainting of its mask,
  grown by 2% of the frame height);
- a camera pans across it: a window of 80% of its width and height, vertically centred, moves at a constant
  speed from its left edge to its right edge over the clip;
- into each view, ``A``'s whole frame and its salient mask, area-resampled to ``scale`` times the view's size,
  are pasted through the resampled mask (whose soft edge blends the two), so ``A``'s object shrinks by
  ``scale`` and keeps its own motion. The paste is vertically centred; with ``travel`` 0 it stays at the view's
  centre, with ``travel`` t it moves at a constant speed over the clip across the middle t of the room the view
  leaves it, from left to right (1: the pasted frame goes from the view's left edge to its right edge)::

    <out>/JPEGImages/<resolution>/<A>-on-<B>/<A's frame>.jpg   JPEG quality 95, 80% of B's width and height
    <out>/Annotations/<resolution>/<A>-on-<B>/<A's frame>.png  the shrunk mask: 255 where it covers half a pixel

Every frame of ``A`` and the first frame of ``B`` must have a mask. The object moves against a scene that
moves with the camera; with ``travel`` 0 it always lies in the central ``scale`` of the view, where a centre
bias finds much of it, while a travelling object crosses the view as a distant rider or ball would. Two
traces of the making remain, and a model may use either: the paste's seam, and the smooth patch where ``B``'s
object was (still, like any part of the scene, but as large as that object: 10% to 30% of the view for five
DAVIS-2016 sequences). Score the copy with ``evaluate data=davis2016 data.root=OUT data.resolution=<resolution>
data.split=all``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from salvid.data.acquire.copies import READ_BATCH, new_copy
from salvid.data.errors import MaskError
from salvid.data.inpainting import remove_object
from salvid.data.layouts import list_sequences
from salvid.data.layouts.base import VideoSequence
from salvid.data.layouts.davis import require_resolution_folder
from salvid.errors import ConfigError

JPEG_QUALITY = 95  # near-lossless: the clips are for scoring, and compression would blur the small objects
GROW = 0.02  # the removed object's mask grows by this share of the frame height, so no rim of it is left
VIEW = 0.8  # the panning camera's window, a share of the scene's width and height


def panned_views(scene: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` views of ``scene`` through a window of ``VIEW`` of its size panning from left to right."""
    height, width = scene.shape[:2]
    h, w = max(1, round(height * VIEW)), max(1, round(width * VIEW))
    y = (height - h) // 2
    return [scene[y:y + h, x:x + w] for x in np.rint(np.linspace(0, width - w, count)).astype(int)]


def paste_small(background: np.ndarray, frame: np.ndarray, mask: np.ndarray, scale: float, place: float = 0.5
                ) -> tuple[np.ndarray, np.ndarray]:
    """``frame``'s masked object at ``scale`` times ``background``'s size, vertically centred on it, ``place``
    (0 to 1) of the way from its left edge to its right; returns the composite (H, W, 3) uint8 and its mask
    (H, W) uint8 0/255."""
    height, width = background.shape[:2]
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    y, x = (height - h) // 2, int((width - w) * place)  # floor: place 0.5 centres as (width - w) // 2
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)[..., None]
    composite = background.copy()
    region = composite[y:y + h, x:x + w].astype(np.float32)
    composite[y:y + h, x:x + w] = np.rint(alpha * small + (1 - alpha) * region).astype(np.uint8)
    target = np.zeros((height, width), np.uint8)
    target[y:y + h, x:x + w] = np.where(alpha[..., 0] >= 0.5, 255, 0)
    return composite, target


def _require_masks(seq: VideoSequence, indices: Sequence[int]) -> None:
    for i in indices:
        if seq.masks[i] is None:
            raise MaskError(f"{seq.frame_name(i)}: has no mask; small-objects needs one on every frame of a "
                            "pasted sequence and on the first frame of a scene: leave this sequence out of "
                            "--sequences")


def paste_places(travel: float, count: int) -> np.ndarray:
    """Where the paste sits in each of ``count`` views (``paste_small``'s ``place``): ``travel`` of the room
    crossed from left to right at a constant speed, centred on the middle; a one-frame clip stays centred."""
    return np.linspace(0.5 - travel / 2, 0.5 + travel / 2, count) if count > 1 else np.full(count, 0.5)


def _write_clip(a: VideoSequence, b: VideoSequence, scale: float, travel: float, frame_dir: Path, mask_dir: Path
                ) -> tuple[int, int]:
    """Writes ``A``'s object in ``B``'s scene; returns the frames written and how many have an empty mask."""
    source_a = a.open()
    still = b.open().read([0])[0]
    scene = remove_object(still, b.salient_mask(0), grow=max(1, round(still.shape[0] * GROW)))
    views = panned_views(scene, len(source_a))
    places = paste_places(travel, len(source_a))
    empty = 0
    for start in range(0, len(source_a), READ_BATCH):
        indices = range(start, min(start + READ_BATCH, len(source_a)))
        for i, frame in zip(indices, source_a.read(indices), strict=True):
            composite, target = paste_small(views[i], frame, a.salient_mask(i), scale, places[i])
            empty += not target.any()
            Image.fromarray(composite).save(frame_dir / f"{a.frames[i].stem}.jpg", quality=JPEG_QUALITY)
            Image.fromarray(target).save(mask_dir / f"{a.frames[i].stem}.png")
    return len(source_a), empty


def small_objects(root: str | Path, out: str | Path, scale: float = 1 / 3, resolution: str = "480p",
                  sequences: Sequence[str] | None = None, travel: float = 0.0,
                  on_clip: Callable[[str, int, int], None] | None = None) -> int:
    """Write ``out`` from the DAVIS-layout dataset at ``root``; returns the number of clips written.
    ``on_clip(name, frames, empty_masks)`` is called after each clip."""
    root, out = Path(root), Path(out)
    if not 0 < scale < 1:
        raise ConfigError(f"--scale {scale}: must be between 0 and 1 (0.33 shrinks each side to a third)")
    if not 0 <= travel <= 1:
        raise ConfigError(f"--travel {travel}: must be between 0 and 1 (0 keeps the object at the view's centre, "
                          "1 moves the pasted frame from the view's left edge to its right edge)")
    require_resolution_folder(root, resolution, "--option resolution")
    available = {seq.name: seq for seq in list_sequences("davis2016", root, "all", resolution=resolution)}
    if sequences is not None and not sequences:
        raise ConfigError("--sequences: names no sequence; give comma-separated names, or leave it out for all")
    names = list(sequences) if sequences is not None else sorted(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(f"--sequences {unknown[0]}: not a sequence of {root / 'JPEGImages' / resolution}; "
                          f"it has {', '.join(sorted(available))}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--sequences {repeated[0]}: named twice; name each sequence once")
    if len(names) < 2:
        raise ConfigError(f"{root / 'JPEGImages' / resolution}: small-objects needs at least two sequences (each "
                          f"one's object moves in the next one's scene); it got {len(names)}")
    pairs = list(zip(names, names[1:] + names[:1], strict=True))
    for a, b in pairs:
        _require_masks(available[a], range(len(available[a].masks)))
        _require_masks(available[b], [0])
    with new_copy(root, out) as partial:
        for a, b in pairs:
            clip = f"{a}-on-{b}"
            frame_dir = partial / "JPEGImages" / resolution / clip
            mask_dir = partial / "Annotations" / resolution / clip
            frame_dir.mkdir(parents=True)
            mask_dir.mkdir(parents=True)
            count, empty = _write_clip(available[a], available[b], scale, travel, frame_dir, mask_dir)
            if on_clip is not None:
                on_clip(clip, count, empty)
    return len(pairs)
