"""A smaller copy of a DAVIS-layout dataset, made as the shipped models' 427x240 copy of DAVIS-2016 was made.

    <out>/JPEGImages/<height>p/<seq>/<frame>.jpg   Lanczos-resampled, JPEG quality 80
    <out>/Annotations/<height>p/<seq>/<frame>.png  salient mask (every object, as the layout reads it) as 0/255,
                                                   resampled bilinearly, then 255 where >= 128, else 0
    <out>/ImageSets/...                            the split files, paths renamed to the new resolution folder

The width keeps the aspect ratio (854x480 -> 427x240). Other files at the top of ``Annotations/``
(``db_info.yml``) are copied. Everything is written into ``<out>.partial`` and renamed to ``<out>`` at the end (:mod:`salvid.data.acquire.copies`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from salvid.data.acquire.copies import READ_BATCH, new_copy
from salvid.data.layouts import list_sequences
from salvid.data.layouts.davis import require_resolution_folder
from salvid.errors import ConfigError

MIN_HEIGHT = 16
JPEG_QUALITY = 80


def resized(image: np.ndarray, height: int, resample: Image.Resampling) -> Image.Image:
    """``image`` scaled to ``height`` rows, the aspect ratio kept."""
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return Image.fromarray(image).resize((width, height), resample)


def downscale(root: str | Path, out: str | Path, height: int = 240, resolution: str = "480p",
              on_sequence: Callable[[str, int], None] | None = None) -> int:
    """Write ``out`` from the DAVIS-layout dataset at ``root`` (resolution folder ``resolution``); returns the
    number of sequences written."""
    root, out = Path(root), Path(out)
    if height < MIN_HEIGHT:
        raise ConfigError(f"--height {height}: must be at least {MIN_HEIGHT}")
    require_resolution_folder(root, resolution, "--option resolution")
    sequences = list_sequences("davis2016", root, "all", resolution=resolution)
    folder = f"{height}p"
    with new_copy(root, out) as partial:
        for seq in sequences:
            frame_dir = partial / "JPEGImages" / folder / seq.name
            mask_dir = partial / "Annotations" / folder / seq.name
            frame_dir.mkdir(parents=True)
            mask_dir.mkdir(parents=True)
            source = seq.open()
            for start in range(0, len(source), READ_BATCH):
                indices = range(start, min(start + READ_BATCH, len(source)))
                for i, frame in zip(indices, source.read(indices), strict=True):
                    image = resized(frame, height, Image.Resampling.LANCZOS)
                    image.save(frame_dir / f"{seq.frames[i].stem}.jpg", quality=JPEG_QUALITY)
            for i in seq.annotated_frames:
                mask = resized(seq.salient_mask(i) * np.uint8(255), height, Image.Resampling.BILINEAR)
                binary = np.where(np.asarray(mask) >= 128, 255, 0).astype(np.uint8)
                Image.fromarray(binary).save(mask_dir / f"{seq.frames[i].stem}.png")
            if on_sequence is not None:
                on_sequence(seq.name, len(source))
        _copy_split_files(root, partial, resolution, folder)
        for extra in (root / "Annotations").iterdir():
            if extra.is_file():
                shutil.copy2(extra, partial / "Annotations" / extra.name)
    return len(sequences)


def _copy_split_files(root: Path, partial: Path, resolution: str, folder: str) -> None:
    """Split files of the source's resolution get the new folder's name and paths; the resolution-free ones
    (``ImageSets/2016``, ``ImageSets/2017``) are copied as they are."""
    sets = root / "ImageSets"
    if not sets.is_dir():
        return
    for path in sets.rglob("*.txt"):
        relative = path.relative_to(sets)
        if relative.parts[0] == resolution:
            text = path.read_text(encoding="utf-8").replace(f"/{resolution}/", f"/{folder}/")
            target = partial / "ImageSets" / folder / Path(*relative.parts[1:])
        else:
            text, target = path.read_text(encoding="utf-8"), partial / "ImageSets" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
