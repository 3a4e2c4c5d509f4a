"""Counts and cheap checks of listed sequences, done once at setup (and by ``prepare``'s layout check).

For every sequence: the frame size (image headers, or the video's first frame), and every mask decoded once,
so a zero-byte or undecodable mask, or a mask whose size differs from its frame's, stops setup with a message
naming the file(s) instead of failing later inside a dataloader worker. Empty masks (the object left the
frame) are kept and counted. What is too costly to check here (decoding every frame, e.g. a truncated JPEG)
fails when read, with an error naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from salvid.data.layouts.base import VideoSequence
from salvid.data.masks import check_same_size
from salvid.errors import ConfigError

MASK_RESIZE = ("error", "nearest")


@dataclass(frozen=True)
class SequenceCounts:
    name: str
    frames: int
    targets: int  # annotated frames
    empty: int  # annotated frames whose mask is empty
    resized: int  # masks of another size than their frame, resized by data.mask_resize=nearest
    size: tuple[int, int]  # (height, width) of the frames

    @property
    def unannotated(self) -> int:
        return self.frames - self.targets


def check_mask_resize(policy: str) -> None:
    if policy not in MASK_RESIZE:
        raise ConfigError(f"data.mask_resize={policy!r}: must be one of {', '.join(MASK_RESIZE)} (error: a mask of "
                          "another size than its frame stops the run; nearest: it is resized to the frame)")


def count_sequence(seq: VideoSequence, mask_resize: str = "error") -> SequenceCounts:
    check_mask_resize(mask_resize)
    size = seq.open().size
    empty = resized = 0
    for i in seq.annotated_frames:
        mask = seq.salient_mask(i)
        if mask.shape != tuple(size):
            if mask_resize == "error":
                check_same_size(seq.frame_name(i), size, seq.masks[i], mask.shape)
            resized += 1
        empty += int(not mask.any())
    return SequenceCounts(seq.name, len(seq.masks), len(seq.annotated_frames), empty, resized, tuple(size))


def count_sequences(
    sequences: Iterable[VideoSequence],
    mask_resize: str = "error",
    threads: int = 4,
    on_done: Callable[[SequenceCounts], None] | None = None,
) -> list[SequenceCounts]:
    """``count_sequence`` over many sequences in threads (PIL decodes without the GIL); order kept."""
    with ThreadPoolExecutor(threads) as pool:
        out = []
        for counts in pool.map(lambda s: count_sequence(s, mask_resize), sequences):
            if on_done is not None:
                on_done(counts)
            out.append(counts)
    return out
