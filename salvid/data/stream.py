"""Streams (t-1, t, t+1) triplets from sequences, decoding each frame once per pass.

Work is cut into *chunks*: runs of up to ``chunk_len`` consecutive annotated frames of one sequence. A chunk
decodes its frames (plus the ``in_frames // 2`` neighbours on each side) in one ascending read, so a frame
is decoded once per chunk instead of once per triplet it belongs to.

Sharding. Each DDP rank takes a contiguous slice of the epoch's samples (in chunk order, so a chunk is
decoded by one rank, or two where a slice boundary cuts it). A rank's slice is then cut into one
contiguous segment per dataloader worker, sized in whole batches (only the rank's last batch may be
partial). The DataLoader takes batches from its workers in turn, so a rank yields exactly
``ceil(samples / batch_size)`` batches whatever the number of workers: ``len()`` is exact, an evaluation is
never truncated, and in training, where the epoch is padded to ``world_size * ceil(N / world_size)``
samples with its first ones (as ``DistributedSampler`` does), every rank yields the same number of batches, so DDP never waits
on a rank that ran out. Evaluation shards are disjoint and complete: each frame is scored exactly once.

Training order. The chunk order is shuffled per epoch (same seed on every rank, so shards do not overlap)
and each worker passes its samples through a shuffle buffer so a batch mixes sequences. Augmentations draw
from a seed derived from (seed, epoch, video, frame), so a sample's augmentation does not depend on the
number of workers or ranks, nor on where a run was resumed.

Resuming. ``resume_at(epoch, batches)`` makes the pass over ``epoch`` skip the batches already trained on,
without decoding them.

Weights. Training epochs honour ``VideoSequence.weight`` (``concat`` datasets): each chunk appears
``floor(weight)`` times, plus once more with probability ``frac(weight)`` (drawn per epoch, identically on
every rank), before the epoch is padded or cut to ``len() * world_size`` samples. Evaluation visits every
chunk once.

Frame steps. Training clips may take their frames ``k`` apart (t-k, t, t+k), ``k`` drawn per sample from
1..``max_frame_step`` with the augmentation's seed, so the network sees motions of several magnitudes;
evaluation always takes consecutive frames, as inference does.

At sequence ends the missing neighbour repeats the edge frame (frame 0 is its own t-1), so sequences of one
or two frames still give clips; a still image's sequence then makes its clip (``VideoSequence.make_clip``,
e.g. a pseudo-clip with a small motion, :mod:`salvid.data.pseudo_clips`) before augmentation, from its own
seed. A mask whose size differs from its frame's is an error naming both files, unless
``mask_resize="nearest"`` (nearest-neighbour resize of the mask to the frame). Any other failure while
producing a sample is re-raised naming the sequence and frame, so an error in a dataloader worker says which
file caused it.
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

from salvid.data.inventory import check_mask_resize
from salvid.data.layouts.base import DatasetError, VideoSequence
from salvid.data.masks import check_same_size
from salvid.data.sources import FrameSource
from salvid.errors import ConfigError, DataError


def triplet_indices(t: int, n_frames: int, in_frames: int = 3, step: int = 1) -> list[int]:
    """Frame indices of the clip centred on ``t``, ``step`` frames apart; out-of-range neighbours repeat the
    edge frame."""
    r = in_frames // 2
    return [min(max(t + step * i, 0), n_frames - 1) for i in range(-r, r + 1)]


@dataclass(frozen=True)
class Chunk:
    seq: int  # index into the sequence list
    targets: tuple[int, ...]  # annotated frame indices, ascending


def make_chunks(sequences: list[VideoSequence], chunk_len: int) -> list[Chunk]:
    chunks = []
    for s, seq in enumerate(sequences):
        targets = seq.annotated_frames
        for i in range(0, len(targets), chunk_len):
            chunks.append(Chunk(s, tuple(targets[i : i + chunk_len])))
    return chunks


def worker_ranges(n_samples: int, batch_size: int, num_workers: int) -> list[tuple[int, int]]:
    """Each worker's ``[start, stop)`` of a rank's samples, in whole batches.

    The DataLoader takes batch ``j`` from worker ``j % num_workers``; worker ``w`` therefore gets
    ``len(range(w, n_batches, num_workers))`` batches, and the one partial batch (the last) belongs to
    worker ``(n_batches - 1) % num_workers``.
    """
    n_batches = math.ceil(n_samples / batch_size)
    sizes = [len(range(w, n_batches, num_workers)) * batch_size for w in range(num_workers)]
    if n_batches:
        sizes[(n_batches - 1) % num_workers] -= n_batches * batch_size - n_samples
    starts = np.cumsum([0, *sizes]).tolist()
    return list(zip(starts[:-1], starts[1:], strict=True))


def buffer_order(n: int, size: int, rng: random.Random) -> list[int]:
    """The order in which a shuffle buffer of ``size`` slots emits items ``0..n-1`` fed in order.

    Each item leaves at most ``size`` places after it entered, so samples can still be decoded in
    ascending order with about ``size`` of them held in memory.
    """
    out, buffer = [], []
    for i in range(n):
        if len(buffer) < size:
            buffer.append(i)
            continue
        j = rng.randrange(size)
        out.append(buffer[j])
        buffer[j] = i
    rng.shuffle(buffer)
    return out + buffer


class TripletStream(IterableDataset):
    """Yields dicts ``frames`` (T, H, W, 3) uint8, ``mask`` (H, W) uint8 {0,1}, ``video_id``, ``frame_id``.

    Args:
        sequences: from a dataset layout.
        transform: ``f(frames: list[HxWx3], mask: HxW, seed: int | None) -> (frames, mask)``, applied with the
            same random parameters (drawn from ``seed``) to every frame and the mask.
        shuffle: shuffle chunk order each epoch and pass samples through a shuffle buffer (training); also
            applies ``VideoSequence.weight``.
        chunk_len, buffer_size: see the module docstring.
        batch_size: of the DataLoader that batches this stream (worker shares are whole batches).
        seed: base of the per-epoch shuffle and of the augmentation seeds; identical on every rank.
        rank, world_size: this process's DDP rank and the number of ranks.
        mask_resize: ``"error"`` or ``"nearest"``, see the module docstring.
        max_frame_step: training clips take frames ``k`` apart, ``k`` uniform in 1..this (see above).
    """

    def __init__(
        self,
        sequences: list[VideoSequence],
        transform: Callable | None = None,
        in_frames: int = 3,
        shuffle: bool = False,
        chunk_len: int = 16,
        buffer_size: int = 64,
        batch_size: int = 1,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        mask_resize: str = "error",
        max_frame_step: int = 1,
    ):
        super().__init__()
        check_mask_resize(mask_resize)
        if max_frame_step < 1:
            raise ValueError(f"max_frame_step={max_frame_step}: must be >= 1 (1: consecutive frames)")
        self.max_frame_step = max_frame_step if shuffle else 1
        # what a pseudo-clip may paste its object onto: the still images this stream trains on (none in evaluation)
        self.scenes = tuple((s.frames[0], s.masks[0]) for s in sequences if s.still) if shuffle else ()
        self.mask_resize = mask_resize
        self.sequences = sequences
        self.transform = transform
        self.in_frames = in_frames
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.chunks = make_chunks(sequences, chunk_len)
        weights = [sequences[c.seq].weight if shuffle else 1.0 for c in self.chunks]
        self.num_samples = round(sum(len(c.targets) * w for c, w in zip(self.chunks, weights, strict=True)))
        if self.num_samples < world_size:
            # A rank without data would skip the loop while the others wait for it in a collective.
            raise ConfigError(f"trainer.devices: {self.num_samples} annotated frame(s) cannot feed {world_size} "
                              "processes, one batch each at least; use fewer devices or more data")
        # Shared memory, so that dataloader workers (persistent ones too) see what the main process sets:
        # the epoch being iterated, and the (epoch, batches) to skip when a run resumes mid-epoch.
        self._epoch = torch.zeros(1, dtype=torch.long).share_memory_()
        self._resume = torch.full((2,), -1, dtype=torch.long).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def resume_at(self, epoch: int, batches: int) -> None:
        """Start at ``epoch``, skipping its first ``batches`` batches (those a resumed run already trained on)."""
        self._epoch[0] = epoch
        self._resume[0], self._resume[1] = epoch, batches

    def __len__(self) -> int:
        """Samples this rank yields per epoch (``ceil(len / batch_size)`` is its exact batch count)."""
        if self.shuffle:
            return math.ceil(self.num_samples / self.world_size)
        return len(range(*self._eval_bounds()))

    def _eval_bounds(self) -> tuple[int, int]:
        n, r, w = self.num_samples, self.rank, self.world_size
        return r * n // w, (r + 1) * n // w

    def _rank_items(self, epoch: int) -> list[tuple[Chunk, int]]:
        """This rank's (chunk, target) samples for ``epoch``: a contiguous slice of the epoch's chunk order,
        so a chunk is decoded by one rank (two where a slice boundary cuts it)."""
        if not self.shuffle:
            items = [(c, t) for c in self.chunks for t in c.targets]
            return items[slice(*self._eval_bounds())]
        rng = random.Random(self.seed * 1_000_003 + epoch)
        chunks = []
        for chunk in self.chunks:
            weight = self.sequences[chunk.seq].weight
            chunks.extend([chunk] * (int(weight) + (rng.random() < weight - int(weight))))
        rng.shuffle(chunks)
        items = [(c, t) for c in chunks for t in c.targets]
        # Equal shares for every rank: pad with the epoch's first samples, as DistributedSampler does, or cut
        # (fractional weights make the epoch's total vary around the expected count).
        total = len(self) * self.world_size
        while items and len(items) < total:
            items += items[: total - len(items)]
        items = items[:total]
        return items[self.rank * len(self) : (self.rank + 1) * len(self)]

    def __iter__(self) -> Iterator[dict]:
        epoch = int(self._epoch[0])
        skip = int(self._resume[1]) if int(self._resume[0]) == epoch else 0
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        # Batch j comes from the worker in role j % nworkers; the DataLoader asks worker 0 first, so after
        # skipping `skip` batches worker 0 takes the role that serves batch `skip`.
        role = (wid + skip) % nworkers
        start, stop = worker_ranges(len(self), self.batch_size, nworkers)[role]
        items = self._rank_items(epoch)[start:stop]
        order: list[int] | range = range(len(items))
        if self.shuffle:
            rng = random.Random((self.seed * 1_000_003 + epoch) * 1_000_003 + self.rank * 1009 + role)
            order = buffer_order(len(items), self.buffer_size, rng)
        order = order[len(range(role, skip, nworkers)) * self.batch_size :]
        samples = self._samples(items, set(order), epoch)
        ready: dict[int, dict] = {}
        for i in order:
            while i not in ready:
                j, sample = next(samples)
                ready[j] = sample
            yield ready.pop(i)

    def _samples(self, items: list[tuple[Chunk, int]], wanted: set[int], epoch: int) -> Iterator[tuple[int, dict]]:
        """``(index, sample)`` for the wanted items, in item order; each chunk's frames decoded in one read."""
        r = self.in_frames // 2
        i = 0
        # Consecutive chunks of one sequence share a decoder, and the neighbours one chunk already decoded
        # are handed to the next: reading an earlier frame again would make decord seek back to a keyframe.
        opened: tuple[int, FrameSource] | None = None
        held: dict[int, np.ndarray] = {}
        while i < len(items):
            chunk = items[i][0]
            run = i
            while run < len(items) and items[run][0] is chunk:
                run += 1
            targets = [(k, items[k][1]) for k in range(i, run) if k in wanted]
            i = run
            if not targets:
                continue
            seq = self.sequences[chunk.seq]
            if opened is None or opened[0] != chunk.seq:
                opened, held = (chunk.seq, seq.open()), {}
            source = opened[1]
            n = len(source)
            clips = {t: triplet_indices(t, n, self.in_frames, self._frame_step(epoch, chunk.seq, t))
                     for _, t in targets}
            needed = sorted({f for clip in clips.values() for f in clip})
            new = [f for f in needed if f not in held]
            decoded = {**{f: held[f] for f in needed if f in held}, **dict(zip(new, source.read(new), strict=True))}
            held = {f: decoded[f] for f in needed if f > needed[-1] - 2 * r * self.max_frame_step}
            for k, t in targets:
                frames = [decoded[f] for f in clips[t]]
                try:
                    mask = self._mask(seq, t, frames[r].shape[:2])
                    if seq.make_clip is not None:  # a still image; evaluation gets the same clip every epoch
                        epochs = (epoch,) if self.shuffle else ()
                        clip_seed = _augmentation_seed(self.seed, chunk.seq, t, 1, *epochs)
                        frames, mask = seq.make_clip(frames, mask, clip_seed, self.scenes)
                    if self.transform is not None:
                        seed = _augmentation_seed(self.seed, epoch, chunk.seq, t) if self.shuffle else None
                        frames, mask = self.transform(frames, mask, seed)
                except (DataError, DatasetError):
                    raise  # already names the file
                except Exception as error:
                    raise RuntimeError(f"{seq.frame_name(t)} (mask {seq.masks[t]}): {error}") from error
                yield k, {"frames": np.stack(frames), "mask": mask, "video_id": chunk.seq, "frame_id": t}

    def _frame_step(self, epoch: int, seq: int, t: int) -> int:
        if self.max_frame_step == 1:
            return 1
        return 1 + _augmentation_seed(self.seed, epoch, seq, t, 2) % self.max_frame_step

    def _mask(self, seq: VideoSequence, t: int, size: tuple[int, int]) -> np.ndarray:
        mask = seq.salient_mask(t)
        if mask.shape != size:
            if self.mask_resize == "error":
                check_same_size(seq.frame_name(t), size, seq.masks[t], mask.shape)
            mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        return mask


def _augmentation_seed(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
