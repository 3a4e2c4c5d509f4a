"""Procedural videos with salient-object masks: the embedded dataset that needs no download.

Each sequence is a textured background panning like a camera (low-saturation sums of sinusoids, some
drifting on their own) with one or two salient objects (ellipses or polygons, saturated and striped)
that move along their own paths, scale, rotate, and sometimes enter or leave the frame, so some masks
are empty. Objects differ from the background by appearance (saturated, bright) and by motion, so a
small 3D CNN learns them quickly. Everything follows from the seed.

Layout written by ``generate_dataset``::

    <root>/videos/<name>.mp4          H.264, yuv420p, crf 12, moov atom first
    <root>/masks/<name>/00000.png     one 0/255 L-mode PNG per frame
    <root>/splits/{train,val,test}.txt
    <root>/synthetic.json             the parameters; written last, marks the dataset complete
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from salvid.errors import ConfigError, DataError

# Bump when the rendering changes, so datasets written by an older generator are rebuilt.
GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
DEFAULT_NUM_VIDEOS = {"train": 8, "val": 2, "test": 2}
PARAMS_FILE = "synthetic.json"
CRF = 12  # near-transparent quality; files stay small at these sizes


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32)


class _Background:
    """Low-saturation texture that pans with a constant camera velocity; some components drift."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]):
        side = min(size)
        hue = rng.random()
        self.dark = _hsv(hue, rng.uniform(0.0, 0.25), rng.uniform(0.15, 0.35))
        self.light = _hsv(
            (hue + rng.uniform(-0.1, 0.1)) % 1.0, rng.uniform(0.0, 0.25), rng.uniform(0.45, 0.65)
        )
        count = 6
        angles = rng.uniform(0, np.pi, count)
        periods = rng.uniform(0.06, 0.5, count) * side
        self.wave_vectors = (2 * np.pi / periods)[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
        self.amplitudes = periods / periods.max()  # coarse components dominate: smooth, natural-looking
        if rng.random() < 0.3:  # a strong stripe pattern instead of plain noise
            self.amplitudes[0] = 2.5
        self.phases = rng.uniform(0, 2 * np.pi, count)
        self.drifts = rng.uniform(-0.15, 0.15, count)  # rad/frame: non-rigid background motion
        speed, direction = rng.uniform(0.3, 1.5), rng.uniform(0, 2 * np.pi)
        self.pan = speed * np.array([np.cos(direction), np.sin(direction)])

    def render(self, xs: np.ndarray, ys: np.ndarray, t: int) -> np.ndarray:
        x, y = xs + self.pan[0] * t, ys + self.pan[1] * t
        texture = np.zeros_like(xs)
        for (kx, ky), amplitude, phase, drift in zip(
            self.wave_vectors, self.amplitudes, self.phases, self.drifts, strict=True
        ):
            texture += amplitude * np.sin(kx * x + ky * y + phase + drift * t)
        texture = 0.5 + 0.5 * texture / self.amplitudes.sum()
        return self.dark + (self.light - self.dark) * texture[..., None]


class _SalientObject:
    """A saturated, striped ellipse or polygon moving from a start to an end point while it deforms."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], num_frames: int):
        height, width = size
        side = min(size)
        self.radius = rng.uniform(0.12, 0.25) * side
        if rng.random() < 0.5:
            angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            radii = np.ones(40)
            axes = np.array([1.0, rng.uniform(0.5, 1.0)])
        else:
            vertices = rng.integers(5, 9)
            angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
            radii = rng.uniform(0.6, 1.0, vertices)
            axes = np.ones(2)
        self.outline = radii[:, None] * axes * np.stack([np.cos(angles), np.sin(angles)], 1)
        self.scale_amplitude = rng.uniform(0.1, 0.3)
        self.scale_frequency, self.scale_phase = rng.uniform(0.1, 0.4), rng.uniform(0, 2 * np.pi)
        self.angle0, self.spin = rng.uniform(0, 2 * np.pi), rng.uniform(-0.15, 0.15)

        reach = self.radius * (1 + self.scale_amplitude)
        inside_low, inside_high = np.array([reach, reach]), np.array([width - reach, height - reach])
        crossing = rng.choice(["enters", "leaves", "passes"]) if rng.random() < 0.35 else None
        start = rng.uniform(inside_low, inside_high)
        end = rng.uniform(inside_low, inside_high)
        while np.linalg.norm(end - start) < 0.3 * side:  # a clearly moving object, not one sitting still
            end = rng.uniform(inside_low, inside_high)
        if crossing in ("enters", "passes"):
            start = self._outside(rng, end, size, reach)
        if crossing in ("leaves", "passes"):
            end = self._outside(rng, start, size, reach)
        self.start, self.end = start, end
        self.num_frames = num_frames
        self.wobble = rng.uniform(0, 0.05 * side)
        self.wobble_frequency, self.wobble_phase = rng.uniform(0.2, 0.6), rng.uniform(0, 2 * np.pi)

        self.colour = _hsv(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.85, 1.0))
        self.stripe_depth = rng.uniform(0.1, 0.3)
        self.stripe_period = rng.uniform(0.3, 0.6) * self.radius

    @staticmethod
    def _outside(
        rng: np.random.Generator, other: np.ndarray, size: tuple[int, int], reach: float
    ) -> np.ndarray:
        """A point just beyond the frame edge farthest from ``other``, so the path crosses the frame."""
        height, width = size
        gaps = {"left": other[0], "right": width - other[0], "top": other[1], "bottom": height - other[1]}
        edge = max(gaps, key=gaps.get)
        margin = 1.2 * reach
        if edge in ("left", "right"):
            x = -margin if edge == "left" else width + margin
            return np.array([x, rng.uniform(0, height)])
        y = -margin if edge == "top" else height + margin
        return np.array([rng.uniform(0, width), y])

    def pose(self, t: int) -> tuple[np.ndarray, float, float]:
        """Centre (x, y), scale and angle at frame ``t``."""
        progress = t / max(self.num_frames - 1, 1)
        path = self.end - self.start
        normal = np.array([-path[1], path[0]]) / (np.linalg.norm(path) + 1e-9)
        centre = (
            self.start
            + progress * path
            + normal * self.wobble * np.sin(self.wobble_frequency * t + self.wobble_phase)
        )
        scale = 1 + self.scale_amplitude * np.sin(self.scale_frequency * t + self.scale_phase)
        return centre, scale, self.angle0 + self.spin * t

    def draw(self, frame: np.ndarray, mask: np.ndarray, xs: np.ndarray, ys: np.ndarray, t: int) -> None:
        """Paint the object into ``frame`` (float RGB) and set its pixels in ``mask`` (bool)."""
        centre, scale, angle = self.pose(t)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = centre + scale * self.radius * self.outline @ rotation.T
        inside = np.zeros(mask.shape, np.uint8)
        cv2.fillPoly(inside, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        inside = inside.astype(bool)
        if not inside.any():
            return
        # Stripes fixed to the object (they turn and scale with it): texture that moves with the object.
        along = ((xs[inside] - centre[0]) * np.cos(angle) + (ys[inside] - centre[1]) * np.sin(angle)) / scale
        shade = 1 - self.stripe_depth * (0.5 + 0.5 * np.sin(2 * np.pi * along / self.stripe_period))
        frame[inside] = self.colour * shade[:, None]
        mask |= inside


def render_sequence(
    seed: int | Sequence[int], num_frames: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) uint8 RGB and masks (T, H, W) uint8 in {0, 255} of one sequence."""
    rng = np.random.default_rng(seed)
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    background = _Background(rng, size)
    objects = [_SalientObject(rng, size, num_frames)]
    if rng.random() < 0.35:
        objects.append(_SalientObject(rng, size, num_frames))
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    masks = np.empty((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        frame = background.render(xs, ys, t)
        mask = np.zeros((height, width), bool)
        for obj in objects:
            obj.draw(frame, mask, xs, ys, t)
        frames[t] = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
        masks[t] = mask * np.uint8(255)
    return frames, masks


def sequence_seed(seed: int, split: str, index: int) -> tuple[int, int, int]:
    """The seed of sequence ``index`` of ``split``: independent of how many sequences the other splits have."""
    return seed, SPLITS.index(split), index


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, crf: int = CRF) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 yuv420p mp4 with the index (moov) at the front."""
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: yuv420p needs an even height and width, got {height}x{width}")
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _read_params(root: Path) -> dict | None:
    try:
        return json.loads((root / PARAMS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_dataset(root: Path, params: dict) -> None:
    height, width = params["size"]
    (root / "videos").mkdir()
    (root / "splits").mkdir()
    for split in SPLITS:
        names = [f"{split}_{i:03d}" for i in range(params["num_videos"][split])]
        for i, name in enumerate(names):
            seed = sequence_seed(params["seed"], split, i)
            frames, masks = render_sequence(seed, params["num_frames"], (height, width))
            write_mp4(root / "videos" / f"{name}.mp4", frames, params["fps"], params["crf"])
            mask_dir = root / "masks" / name
            mask_dir.mkdir(parents=True)
            for t, mask in enumerate(masks):
                Image.fromarray(mask, mode="L").save(mask_dir / f"{t:05d}.png")
        (root / "splits" / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    (root / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n")  # last: marks it complete


def generate_dataset(
    root: str | Path,
    num_videos: Mapping[str, int] | None = None,
    num_frames: int = 24,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    fps: int = 10,
) -> Path:
    """Write the synthetic dataset to ``root`` (layout in the module docstring) and return ``root``.

    ``num_videos`` maps split -> number of sequences (default train 8, val 2, test 2). A complete
    dataset with the same parameters already at ``root`` is reused as is; one written with other
    parameters is replaced. The dataset is written to a hidden sibling folder and renamed into place,
    so ``root`` is never half-written. A non-empty ``root`` that is not a synthetic dataset raises
    :class:`~salvid.errors.DataError` rather than being overwritten. Call it from one process (Lightning's
    ``prepare_data``).
    """
    root = Path(root)
    num_videos = dict(DEFAULT_NUM_VIDEOS if num_videos is None else num_videos)
    unknown = set(num_videos) - set(SPLITS)
    if unknown:
        raise ConfigError(f"data.synthetic.num_videos: unknown splits {sorted(unknown)}; use some of {list(SPLITS)}")
    if any(count < 0 for count in num_videos.values()):
        raise ConfigError(f"data.synthetic.num_videos={num_videos}: each count must be 0 or more")
    if num_frames < 1 or fps < 1:
        raise ConfigError(f"data.synthetic: need num_frames >= 1 and fps >= 1, got num_frames={num_frames}, fps={fps}")
    height, width = size
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ConfigError(f"data.synthetic.size=[{height}, {width}]: both sides must be even and at least 2 "
                          "(H.264 in yuv420p)")
    params = {
        "generator_version": GENERATOR_VERSION,
        "num_videos": {split: int(num_videos.get(split, 0)) for split in SPLITS},
        "num_frames": int(num_frames),
        "size": [int(height), int(width)],
        "seed": int(seed),
        "fps": int(fps),
        "crf": CRF,
    }
    existing = _read_params(root)
    if existing == params:
        return root
    if existing is None and root.is_dir() and any(root.iterdir()):
        raise DataError(f"{root}: not empty and not a synthetic dataset (no valid {PARAMS_FILE}), so it is left "
                        "as it is; set data.root to a new or empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    try:
        _write_dataset(staging, params)
        if root.exists():  # an empty folder or a dataset with other parameters: move it aside atomically
            aside = root.with_name(f".{root.name}.replaced-{uuid.uuid4().hex}")
            os.rename(root, aside)
            os.rename(staging, root)
            shutil.rmtree(aside)
        else:
            try:
                os.rename(staging, root)
            except OSError:  # another process installed the same dataset first
                if _read_params(root) != params:
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root

