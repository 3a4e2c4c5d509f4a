"""TripletStream across DDP ranks and dataloader workers: exact batch counts, complete evaluation shards,
worker-independent augmentation and mid-epoch resumption."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from salvid.data.layouts import video_folder
from salvid.data.stream import TripletStream, worker_ranges
from salvid.data.synthetic import generate_dataset
from salvid.data.transforms import ClipTransform

BATCH = 4
CHUNK_LEN = 4  # 10 frames per video -> chunks of 4, 4, 2


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    root = generate_dataset(
        tmp_path_factory.mktemp("stream") / "ds",
        num_videos={"train": 3, "val": 1, "test": 1},
        num_frames=10,
        size=(32, 32),
        seed=5,
    )
    return video_folder(root, "train")


def make_stream(sequences, train: bool, rank: int = 0, world_size: int = 1, seed: int = 1) -> TripletStream:
    return TripletStream(
        sequences, ClipTransform((32, 32), train), shuffle=train, chunk_len=CHUNK_LEN, buffer_size=6,
        batch_size=BATCH, seed=seed, rank=rank, world_size=world_size,
    )


def batches(stream: TripletStream, workers: int) -> list[dict]:
    return list(DataLoader(stream, batch_size=BATCH, num_workers=workers))


def ids(batch: dict) -> list[tuple[int, int]]:
    return list(zip(batch["video_id"].tolist(), batch["frame_id"].tolist(), strict=True))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 30, 33])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_worker_ranges_are_whole_batches_in_turn(n, workers):
    ranges = worker_ranges(n, BATCH, workers)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    n_batches = math.ceil(n / BATCH)
    for w, (start, stop) in enumerate(ranges):
        # worker w serves batches w, w + workers, ...; only the overall last batch may be partial
        assert math.ceil((stop - start) / BATCH) == len(range(w, n_batches, workers))
        if n_batches and w != (n_batches - 1) % workers:
            assert (stop - start) % BATCH == 0


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_training_ranks_yield_equal_batches_covering_the_epoch(sequences, workers):
    total = sum(len(s.annotated_frames) for s in sequences)
    seen, counts = Counter(), []
    for rank in range(2):
        stream = make_stream(sequences, train=True, rank=rank, world_size=2)
        out = batches(stream, workers)
        counts.append(len(out))
        assert len(out) == len(DataLoader(stream, batch_size=BATCH)) == math.ceil(math.ceil(total / 2) / BATCH)
        assert sum(len(b["mask"]) for b in out) == math.ceil(total / 2)
        seen.update(i for b in out for i in ids(b))
    assert counts[0] == counts[1]
    all_frames = {(v, t) for v, s in enumerate(sequences) for t in s.annotated_frames}
    assert set(seen) == all_frames  # every sample once per epoch (padding only repeats a few)
    assert sum(seen.values()) - len(all_frames) == 2 * math.ceil(total / 2) - total


@pytest.mark.parametrize("workers", [0, 2])
def test_evaluation_shards_score_every_frame_once(sequences, workers):
    seen = Counter()
    for rank in range(2):
        stream = make_stream(sequences, train=False, rank=rank, world_size=2)
        out = batches(stream, workers)
        assert len(out) == len(DataLoader(stream, batch_size=BATCH))  # Lightning truncates to len()
        seen.update(i for b in out for i in ids(b))
    assert seen == Counter({(v, t): 1 for v, s in enumerate(sequences) for t in s.annotated_frames})


def test_too_few_chunks_for_the_ranks_is_refused(sequences):
    with pytest.raises(ValueError, match="trainer.devices: .* cannot feed 64 processes"):
        make_stream(sequences[:1], train=False, world_size=64)


def test_augmentation_does_not_depend_on_workers(sequences):
    """Each sample's augmentation is seeded by (seed, epoch, video, frame), not by the process drawing it."""
    by_id = []
    for workers in (0, 2):
        samples = {}
        for b in batches(make_stream(sequences, train=True), workers):
            for k, key in enumerate(ids(b)):
                samples[key] = b["frames"][k].numpy()
        by_id.append(samples)
    assert by_id[0].keys() == by_id[1].keys()
    for key, frames in by_id[0].items():
        np.testing.assert_array_equal(frames, by_id[1][key])
    # ... and it is an augmentation: another epoch crops differently
    stream = make_stream(sequences, train=True)
    stream.set_epoch(1)
    epoch1 = {key: b["frames"][k].numpy() for b in batches(stream, 0) for k, key in enumerate(ids(b))}
    assert any(not np.array_equal(frames, epoch1[key]) for key, frames in by_id[0].items())


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("skip", [1, 3, 4])
def test_resume_mid_epoch_continues_the_same_batches(sequences, workers, skip):
    full_stream = make_stream(sequences, train=True)
    full_stream.set_epoch(2)
    full = batches(full_stream, workers)
    resumed_stream = make_stream(sequences, train=True)
    resumed_stream.resume_at(2, skip)
    resumed = batches(resumed_stream, workers)
    assert len(resumed) == len(full) - skip
    for a, b in zip(full[skip:], resumed, strict=True):
        assert ids(a) == ids(b)
        np.testing.assert_array_equal(a["frames"].numpy(), b["frames"].numpy())
    # the skip applies to that epoch only
    resumed_stream.set_epoch(3)
    assert len(batches(resumed_stream, workers)) == len(full)
