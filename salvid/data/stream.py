"""Streams (t-1, t, t+1) triplets from sequences, decoding each frame once per pass.

Work is cut into *chunks*: runs of up to ``chunk_len`` consecutive annotated frames of one sequence. A chunk
decodes its frames (plus the ``in_frames // 2`` neighbours on each side) in one ascending read, so a frame
is decoded once per chunk instead of once per triplet it belongs to. Chunks are sharded across DDP ranks
and dataloader workers; for training their order is shuffled per epoch and samples pass through a shuffle
buffer so a batch mixes sequences.

At sequence ends the missing neighbour repeats the edge frame (frame 0 is its own t-1), so sequences of one
or two frames still give clips.

Training epochs honour ``Sequence.weight``: each chunk appears ``floor(weight)`` times, plus once more with
probability ``frac(weight)`` (drawn per epoch, identically on every rank); the epoch is then padded or cut to
the expected sample count so ``len()`` holds and DDP ranks stay equal. Evaluation visits every chunk once.

A mask whose size differs from its frame's is an error naming both files, unless ``mask_resize="nearest"``
(nearest-neighbour resize of the mask to the frame). Any other failure while producing a sample is re-raised
naming the sequence and frame, so an error in a dataloader worker says which file caused it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from salvid.data.errors import DataError
from salvid.data.inventory import check_mask_resize
from salvid.data.layouts.base import DatasetError, Sequence
from salvid.data.masks import check_same_size


def triplet_indices(t: int, n_frames: int, in_frames: int = 3) -> list[int]:
    """Frame indices of the clip centred on ``t``; out-of-range neighbours repeat the edge frame."""
    r = in_frames // 2
    return [min(max(i, 0), n_frames - 1) for i in range(t - r, t + r + 1)]


@dataclass(frozen=True)
class Chunk:
    seq: int  # index into the sequence list
    targets: tuple[int, ...]  # annotated frame indices, ascending


def make_chunks(sequences: list[Sequence], chunk_len: int) -> list[Chunk]:
    chunks = []
    for s, seq in enumerate(sequences):
        targets = seq.targets
        for i in range(0, len(targets), chunk_len):
            chunks.append(Chunk(s, tuple(targets[i : i + chunk_len])))
    return chunks


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TripletStream(IterableDataset):
    """Yields dicts ``frames`` (T, H, W, 3) uint8, ``mask`` (H, W) uint8 {0,1}, ``video_id``, ``frame_id``.

    Args:
        sequences: from a dataset layout.
        transform: ``f(frames: list[HxWx3], mask: HxW) -> (frames, mask)``, applied with the same random
            parameters to every frame and the mask.
        shuffle: shuffle chunk order each epoch and pass samples through a shuffle buffer (training); also
            applies ``Sequence.weight``.
        chunk_len, buffer_size: see the module docstring.
        seed: base of the per-epoch shuffle; identical on every rank so shards do not overlap.
        mask_resize: ``"error"`` or ``"nearest"``, see the module docstring.
    """

    def __init__(
        self,
        sequences: list[Sequence],
        transform: Callable | None = None,
        in_frames: int = 3,
        shuffle: bool = False,
        chunk_len: int = 16,
        buffer_size: int = 64,
        seed: int = 0,
        mask_resize: str = "error",
    ):
        super().__init__()
        check_mask_resize(mask_resize)
        self.mask_resize = mask_resize
        self.sequences = sequences
        self.transform = transform
        self.in_frames = in_frames
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.seed = seed
        self.chunks = make_chunks(sequences, chunk_len)
        weights = [sequences[c.seq].weight if shuffle else 1.0 for c in self.chunks]
        self.num_samples = round(sum(len(c.targets) * w for c, w in zip(self.chunks, weights, strict=True)))
        # Shared memory so that persistent workers see the epoch set in the main process.
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def __len__(self) -> int:
        """Samples this rank yields per epoch (what a progress bar needs)."""
        _, world = _dist_rank_world()
        return math.ceil(self.num_samples / world) if self.shuffle else self._rank_eval_samples()

    def _rank_eval_samples(self) -> int:
        rank, world = _dist_rank_world()
        return sum(len(c.targets) for c in self.chunks[rank::world])

    def _work(self) -> list[tuple[Chunk, int]]:
        """This worker's (chunk, samples to take) list for the current epoch."""
        rank, world = _dist_rank_world()
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        if not self.shuffle:
            return [(c, len(c.targets)) for c in self.chunks[rank::world]][wid::nworkers]
        rng = random.Random(self.seed * 1_000_003 + int(self._epoch[0]))
        chunks = []
        for chunk in self.chunks:
            weight = self.sequences[chunk.seq].weight
            copies = int(weight) + (rng.random() < weight - int(weight))
            chunks.extend([chunk] * copies)
        rng.shuffle(chunks)
        mine = [(c, len(c.targets)) for c in chunks[rank::world]]
        # Every rank must yield the same number of samples or DDP stalls, and fractional weights make the
        # epoch's total vary: pad with chunks from the start of the epoch order (as DistributedSampler does)
        # or cut the last chunk short.
        if chunks:
            mine = _fit_to(mine, math.ceil(self.num_samples / world), chunks)
        return mine[wid::nworkers]

    def __iter__(self) -> Iterator[dict]:
        samples = self._samples(self._work())
        if not self.shuffle:
            yield from samples
            return
        info = get_worker_info()
        rng = random.Random(self.seed + 7919 * int(self._epoch[0]) + (info.id if info else 0))
        buffer: list[dict] = []
        for sample in samples:
            if len(buffer) < self.buffer_size:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], sample = sample, buffer[i]
            yield sample
        rng.shuffle(buffer)
        yield from buffer

    def _samples(self, work: list[tuple[Chunk, int]]) -> Iterator[dict]:
        r = self.in_frames // 2
        for chunk, take in work:
            seq = self.sequences[chunk.seq]
            source = seq.open()
            n = len(source)
            targets = chunk.targets[:take]
            needed = sorted({i for t in targets for i in triplet_indices(t, n, self.in_frames)})
            decoded = dict(zip(needed, source.read(needed), strict=True))
            for t in targets:
                frames = [decoded[i] for i in triplet_indices(t, n, self.in_frames)]
                try:
                    mask = self._mask(seq, t, frames[r].shape[:2])
                    if self.transform is not None:
                        frames, mask = self.transform(frames, mask)
                except (DataError, DatasetError):
                    raise  # already names the file
                except Exception as error:
                    raise RuntimeError(f"{seq.frame_name(t)} (mask {seq.masks[t]}): {error}") from error
                yield {
                    "frames": np.stack(frames),
                    "mask": mask,
                    "video_id": chunk.seq,
                    "frame_id": t,
                }


    def _mask(self, seq: Sequence, t: int, size: tuple[int, int]) -> np.ndarray:
        mask = seq.target(t)
        if mask.shape != size:
            if self.mask_resize == "error":
                check_same_size(seq.frame_name(t), size, seq.masks[t], mask.shape)
            mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        return mask


def _fit_to(mine: list[tuple[Chunk, int]], target: int, pool: list[Chunk]) -> list[tuple[Chunk, int]]:
    out, total = [], 0
    for chunk, n in mine:
        if total >= target:
            break
        take = min(n, target - total)
        out.append((chunk, take))
        total += take
    i = 0
    while total < target:
        chunk = pool[i % len(pool)]
        take = min(len(chunk.targets), target - total)
        out.append((chunk, take))
        total += take
        i += 1
    return out
