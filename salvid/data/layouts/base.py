"""What every dataset layout produces: a list of sequences, each frames + per-frame masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from salvid.data.sources import FrameSource, ImageFolder, open_video


class DatasetError(ValueError):
    """A dataset on disk is missing or malformed; the message names the path and what is wrong."""


@dataclass(frozen=True)
class Sequence:
    """One video: where its frames are and which frames carry a ground-truth mask.

    ``frames`` is a video file or the ordered frame images; ``masks[i]`` is the mask of frame ``i`` or
    ``None`` where that frame is not annotated (e.g. FBMS): such frames feed neighbours but are never targets.
    """

    name: str
    frames: Path | tuple[Path, ...]
    masks: tuple[Path | None, ...]

    def open(self) -> FrameSource:
        if isinstance(self.frames, Path):
            return open_video(self.frames)
        return ImageFolder(list(self.frames))

    @property
    def targets(self) -> list[int]:
        """Indices of annotated frames."""
        return [i for i, m in enumerate(self.masks) if m is not None]


def read_split(path: Path) -> list[str]:
    """Sequence names of a split file, one per line (blank lines and # comments ignored)."""
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names
