"""Scoring a method from its precomputed maps: how published methods enter the table.

Each sequence's maps are found in the first of these layouts that holds it:

* ``<dir>/<sequence>/<frame stem>.png``: the dataset's own layout;
* ``<dir>/<sequence>/maps/<frame stem>.png``: what ``salvid.predict`` writes (``paths.output_dir=<dir>``);
* ``<dir>/<dataset>/<sequence>/<frame stem>.png``: one folder per dataset, as benchmarks distribute a method's
  maps (the DAVSOD benchmark: ``<method>/<dataset>/<sequence>/``).

Any image suffix salvid reads (png, jpg, bmp), grey or colour (the maximum over channels is the map), 8 or 16
bits. The frame stem is the frame file's stem for frame-folder datasets and the zero-padded frame index
(``00012``) for video files.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from salvid.data.sources import IMAGE_SUFFIXES
from salvid.errors import DataError
from salvid.methods import Clip, SaliencyMethod


class MissingMapsError(DataError, FileNotFoundError):
    """A maps folder lacks maps for frames being scored; the message names the folder and the frames."""


class MapsFolder(SaliencyMethod):
    def __init__(self, name: str, directory: str | Path):
        self.name = name
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise MissingMapsError(f"maps_dirs.{name}={self.directory}: folder not found")
        self._files: dict[str, Path] = {}

    def _sequence_dir(self, sequence: str) -> Path:
        folder = self.directory / sequence
        if self.directory.resolve() not in folder.resolve().parents:  # a sequence name cannot climb out
            raise MissingMapsError(f"{folder}: sequence name {sequence!r} leaves the maps folder {self.directory}")
        for candidate in (folder, folder / "maps"):
            if self._maps(candidate):
                return candidate
        by_dataset = [d / sequence for d in sorted(self.directory.iterdir())
                      if d.is_dir() and d.name != sequence and (d / sequence).is_dir()]
        if len(by_dataset) > 1:
            raise MissingMapsError(f"{self.directory}: sequence {sequence!r} has maps in several dataset folders "
                                   f"({', '.join(d.parent.name for d in by_dataset)}): pass one of them, e.g. "
                                   f"maps_dirs.{self.name}={by_dataset[0].parent}")
        return by_dataset[0] if by_dataset else folder

    @staticmethod
    def _maps(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            return {}
        return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}

    def check(self, sequence: str, frame_names: list[str], targets: list[int]) -> None:
        """Raise :class:`MissingMapsError` listing the target frames that have no map file."""
        folder = self._sequence_dir(sequence)
        present = self._maps(folder)
        missing = [frame_names[t] for t in targets if frame_names[t] not in present]
        if missing:
            shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise MissingMapsError(
                f"{folder}: maps folder of method {self.name!r} is missing maps for {len(missing)} of "
                f"{len(targets)} annotated frames of sequence {sequence!r}: {shown}"
            )

    def begin_sequence(self, name: str, frame_names: list[str]) -> None:
        present = self._maps(self._sequence_dir(name))
        self._files = {i: present.get(stem) for i, stem in enumerate(frame_names)}

    def predict(self, clips: list[Clip], frame_ids: list[int]) -> np.ndarray:
        maps = []
        for clip, t in zip(clips, frame_ids, strict=True):
            image = _read_map(self._files[t], self.directory, self.name, t)
            h, w = clip[len(clip) // 2].shape[:2]
            if image.shape != (h, w):  # maps stored at another resolution are compared at the frame's
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            maps.append(image)
        return np.stack(maps)


def _read_map(path: Path | None, directory: Path, method: str, frame: int) -> np.ndarray:
    """A map file as (H, W) float32 in [0, 1] (8- and 16-bit images by their full range): grey as stored,
    colour as the maximum over its channels.

    Decoded with PIL: OpenCV's PNG decoder fails ("bad parameters to zlib") once decord is imported first.
    """
    if path is None:
        raise MissingMapsError(f"{directory}: no map of frame {frame} ({method})")
    try:
        with Image.open(path) as image:
            values = np.asarray(image.convert("RGB") if image.mode in ("P", "PA", "CMYK") else image)
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise MissingMapsError(f"{path}: cannot read the map of frame {frame} ({method}): {e}") from e
    if values.ndim == 3:
        values = values[..., :3].max(axis=-1)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / 255.0
    if values.dtype == np.uint16 or (values.dtype.kind in "iu" and values.max(initial=0) > 255):
        return values.astype(np.float32) / 65535.0
    return values.astype(np.float32)
