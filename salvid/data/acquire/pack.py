"""Pack a frame-folder dataset into the ``videos`` layout: one H.264 mp4 per sequence + binary mask PNGs.

    <out>/videos/<seq>.mp4          GOP of ``gop`` frames (default 16): chunked reads seek to a nearby keyframe
    <out>/masks/<seq>/<NNNNN>.png   0/255 salient mask of frame NNNNN (0-based); only annotated frames
    <out>/splits/<split>.txt        the sequence names of each split asked for

Masks are written after the layout's rule (palette/multi-object union, FBMS colours), so the packed copy
reads with the plain ``videos`` layout. Frames with odd width or height are encoded as yuv444p (yuv420p needs
even sizes; decord and PyAV read both). Everything is written into ``<out>.partial`` and renamed to ``<out>``
at the end (:mod:`salvid.data.acquire.copies`). VideoSequence names containing ``/`` (concat) become ``__``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from salvid.data.acquire.copies import READ_BATCH, new_copy
from salvid.data.layouts import list_sequences
from salvid.data.layouts.base import VideoSequence


def encode_sequence(seq: VideoSequence, path: Path, fps: int = 25, gop: int = 16, crf: int = 18) -> None:
    source = seq.open()
    height, width = source.size
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        stream.codec_context.gop_size = gop
        stream.options = {"crf": str(crf), "preset": "medium"}
        for start in range(0, len(source), READ_BATCH):
            for frame in source.read(range(start, min(start + READ_BATCH, len(source)))):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _files_size(seq: VideoSequence) -> int:
    files = [seq.frames] if isinstance(seq.frames, Path) else list(seq.frames)
    for entry in seq.masks:
        if entry is not None:
            files.extend([entry] if isinstance(entry, Path) else entry)
    return sum(f.stat().st_size for f in files)


def pack(
    layout: str,
    root: str | Path,
    out: str | Path,
    splits: list[str] | None = None,
    gop: int = 16,
    crf: int = 18,
    fps: int = 25,
    on_sequence: Callable[[str], None] | None = None,
    **options,
) -> tuple[int, int]:
    """Write ``out`` from the dataset at ``root``; returns (bytes before, bytes after)."""
    by_split = {s: list_sequences(layout, root, s, **options) for s in (splits or ["all"])}
    sequences = {seq.name: seq for seqs in by_split.values() for seq in seqs}
    with new_copy(Path(root), Path(out)) as partial:
        before = 0
        (partial / "videos").mkdir()
        for name, seq in sequences.items():
            safe = name.replace("/", "__")
            encode_sequence(seq, partial / "videos" / f"{safe}.mp4", fps, gop, crf)
            mask_dir = partial / "masks" / safe
            mask_dir.mkdir(parents=True)
            for i in seq.annotated_frames:
                Image.fromarray(seq.salient_mask(i) * np.uint8(255)).save(mask_dir / f"{i:05d}.png")
            before += _files_size(seq)
            if on_sequence is not None:
                on_sequence(name)
        if splits:
            (partial / "splits").mkdir()
            for split, seqs in by_split.items():
                (partial / "splits" / f"{split}.txt").write_text("".join(s.name.replace("/", "__") + "\n" for s in seqs))
        after = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file())
    return before, after
