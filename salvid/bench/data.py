"""The benchmark's input frames: a DAVIS copy given with ``--davis-root``, else synthetic videos and a JPEG copy
of them in the DAVIS layout, so the loader and ``predict`` read the same kind of files either way."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from salvid.data.layouts.davis import davis2016
from salvid.data.layouts.videos import video_folder
from salvid.data.preprocess import resize_frame
from salvid.data.sources import ImageFolder


@dataclass(frozen=True)
class JpegData:
    name: str  # how tables name it
    root: Path  # a folder in the DAVIS layout (salvid.data.layouts.davis)
    resolution: str  # its JPEGImages/<resolution> folder


def synthetic_videos(scratch: Path, num_videos: int, num_frames: int, size: tuple[int, int]) -> Path:
    """``num_videos`` training videos of salvid's synthetic dataset (``videos`` layout) under ``scratch``."""
    from salvid.data.synthetic import generate_dataset

    return generate_dataset(scratch / "videos", num_videos={"train": num_videos, "val": 0, "test": 0},
                            num_frames=num_frames, size=size)


def jpeg_copy(video_root: Path, out: Path) -> JpegData:
    """The videos of ``video_root`` decoded to JPEG frames (quality 90) with their masks, in the DAVIS layout."""
    sequences = video_folder(video_root, "train")
    source = sequences[0].open()
    resolution = f"{source.size[0]}p"
    names = []
    for seq in sequences:
        source = seq.open()
        frame_dir = out / "JPEGImages" / resolution / seq.name
        mask_dir = out / "Annotations" / resolution / seq.name
        frame_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(source.read(range(len(source)))):
            Image.fromarray(frame).save(frame_dir / f"{i:05d}.jpg", quality=90)
            shutil.copyfile(seq.masks[i], mask_dir / f"{i:05d}.png")
        names.append(seq.name)
    split = out / "ImageSets" / resolution / "train.txt"
    split.parent.mkdir(parents=True, exist_ok=True)
    split.write_text("".join(f"/JPEGImages/{resolution}/{n}/00000.jpg /Annotations/{resolution}/{n}/00000.png\n"
                             for n in names))
    return JpegData("synthetic JPEG copy", out, resolution)


def davis_data(root: str | Path) -> JpegData:
    """A DAVIS-2016 (or 2017) copy: its ``480p`` frames, or its only resolution folder when it has one."""
    root = Path(root)
    found = sorted(p.name for p in (root / "JPEGImages").glob("*") if p.is_dir())
    resolution = found[0] if len(found) == 1 else "480p"
    return JpegData(f"DAVIS {resolution} JPEG", root, resolution)


def frame_folder(data: JpegData, count: int, size: tuple[int, int], out: Path) -> Path:
    """``count`` frames of ``data``'s sequences, in order (cycling when it has fewer), as JPEG files of exactly
    ``size`` (height, width) in ``out``: one input for ``predict``. Frames of another size are resized."""
    frames = [f for seq in davis2016(data.root, None, data.resolution) for f in seq.frames][:count]
    out.mkdir(parents=True, exist_ok=True)
    distinct = []
    for i, path in enumerate(frames):
        image = ImageFolder([path])
        if image.size == tuple(size):
            distinct.append(path)
            continue
        distinct.append(out / f"resized_{i:05d}.jpg")
        Image.fromarray(resize_frame(image.read([0])[0], size)).save(distinct[-1], quality=90)
    folder = out / "frames"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        os.symlink(Path(distinct[i % len(distinct)]).resolve(), folder / f"{i:05d}.jpg")
    return folder
