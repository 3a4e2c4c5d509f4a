"""The benchmark's input frames: a DAVIS copy given with ``--davis-root``, else synthetic videos and a JPEG copy
of them in the DAVIS layout, so the loader, ``predict`` and ``evaluate`` read the same kind of files either way."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from salvid.data.layouts.davis import davis2016
from salvid.data.layouts.videos import video_folder
from salvid.data.preprocess import resize_frame, resize_mask
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
    write_split(out, resolution, "train", names)
    return JpegData("synthetic JPEG copy", out, resolution)


def write_split(root: Path, resolution: str, split: str, names: list[str]) -> None:
    """``ImageSets/<resolution>/<split>.txt`` listing the sequences ``names`` as DAVIS-2016's split files do."""
    path = root / "ImageSets" / resolution / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"/JPEGImages/{resolution}/{n}/00000.jpg /Annotations/{resolution}/{n}/00000.png\n"
                            for n in names))


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


def davis_copy(data: JpegData, count: int, size: tuple[int, int], num_sequences: int, out: Path,
               split: str = "val") -> JpegData:
    """Exactly ``count`` annotated frames of ``data`` (in order, cycling when it has fewer) at ``size`` (height,
    width), cut into ``num_sequences`` sequences of nearly equal length, in the DAVIS-2016 layout with the split
    file ``ImageSets/<resolution>/<split>.txt``: an input for ``evaluate`` shaped like DAVIS-2016 val (1,376 frames
    in 20 sequences at 854x480). Frames are resized as the network's input is
    (:func:`salvid.data.preprocess.resize_frame`), masks nearest; each distinct frame is written once and linked
    where it repeats (frames already of ``size`` are linked where they are)."""
    annotated = [(seq, t) for seq in davis2016(data.root, None, data.resolution) for t in seq.annotated_frames]
    distinct = []  # (frame file, mask file) at ``size``
    (out / "distinct").mkdir(parents=True, exist_ok=True)
    for i, (seq, t) in enumerate(annotated[:count]):
        frame = ImageFolder([seq.frames[t]])
        if frame.size == tuple(size):
            frame_path = Path(seq.frames[t])
        else:
            frame_path = out / "distinct" / f"{i:05d}.jpg"
            Image.fromarray(resize_frame(frame.read([0])[0], size)).save(frame_path, quality=90)
        mask_path = out / "distinct" / f"{i:05d}.png"
        Image.fromarray(resize_mask(seq.salient_mask(t), size) * 255).save(mask_path)  # 0/255, as DAVIS-2016
        distinct.append((frame_path.resolve(), mask_path.resolve()))
    resolution = f"{size[0]}p"
    names = [f"seq{s:02d}" for s in range(min(num_sequences, count))]
    j = 0  # output frames so far
    for s, name in enumerate(names):
        frame_dir = out / "JPEGImages" / resolution / name
        mask_dir = out / "Annotations" / resolution / name
        frame_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count // len(names) + (s < count % len(names))):
            frame_path, mask_path = distinct[j % len(distinct)]
            os.symlink(frame_path, frame_dir / f"{index:05d}.jpg")
            os.symlink(mask_path, mask_dir / f"{index:05d}.png")
            j += 1
    write_split(out, resolution, split, names)
    return JpegData(f"{data.name}, {count} frames at {size[1]}x{size[0]}", out, resolution)
