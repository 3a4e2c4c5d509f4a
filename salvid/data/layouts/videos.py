"""The ``videos`` layout: a folder of video files with a mask folder per video (users' own data, synthetic data).

    <root>/videos/<name>.{mp4,avi,mov,mkv}
    <root>/masks/<name>/<NNNNN>.png      # mask of frame NNNNN (0-based); missing files = unannotated frames
    <root>/splits/<split>.txt            # optional: sequence names of each split

A container that over-reports its frame count is trimmed to the frames that decode (see
:mod:`salvid.data.sources`); masks of the frames that do not decode are skipped and counted at setup. A mask
numbered beyond even the reported count is an error (its numbering does not match the video).
"""

from __future__ import annotations

from pathlib import Path

from salvid.data.layouts.base import (
    DatasetError,
    VideoSequence,
    check_name,
    images_by_frame,
    select_sequences,
    skip,
)
from salvid.data.sources import VIDEO_SUFFIXES, open_video


def video_folder(root: str | Path, split: str | None = None) -> list[VideoSequence]:
    root = Path(root)
    video_dir = root / "videos"
    if not video_dir.is_dir():
        raise DatasetError(f"{video_dir}: no videos folder (expected <root>/videos/<name>.mp4 and <root>/masks/<name>/)")
    videos = {p.stem: p for p in map(check_name, sorted(video_dir.iterdir()))
              if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")}
    if not videos:
        raise DatasetError(f"{video_dir}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    split_file = None if split is None else root / "splits" / f"{split}.txt"
    names = select_sequences(videos, split_file, video_dir)
    return [_sequence(name, videos[name], root / "masks" / name) for name in names]


def _sequence(name: str, video: Path, mask_dir: Path) -> VideoSequence:
    if not mask_dir.is_dir():
        raise DatasetError(f"{mask_dir}: mask folder missing for video {video}")
    source = open_video(video)
    n_frames = len(source)
    reported = max(getattr(source, "frames_reported", n_frames), n_frames)
    masks: list[Path | None] = [None] * n_frames
    for i, p in images_by_frame(mask_dir, (".png",)).items():
        if not isinstance(i, int):
            raise DatasetError(f"{p}: mask name must end in the frame number (e.g. 00012.png)")
        if i >= reported:
            raise DatasetError(f"{p}: mask for frame {i}, but {video} has only {n_frames} frames")
        if i >= n_frames:
            skip(f"{p}: mask of frame {i}, which does not decode in {video} ({n_frames} of {reported} frames decode)")
            continue
        masks[i] = p
    if not any(masks):
        raise DatasetError(f"{mask_dir}: no masks (*.png) for video {video}")
    return VideoSequence(name, video, tuple(masks))
