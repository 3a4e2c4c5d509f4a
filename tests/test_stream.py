from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from salvid.data.layouts import VideoSequence
from salvid.data.stream import TripletStream, make_chunks, triplet_indices


@pytest.mark.parametrize(
    "t, n, k, expected",
    [
        (0, 5, 3, [0, 0, 1]),
        (4, 5, 3, [3, 4, 4]),
        (2, 5, 3, [1, 2, 3]),
        (0, 1, 3, [0, 0, 0]),
        (1, 2, 5, [0, 0, 1, 1, 1]),
        (3, 5, 1, [3]),
    ],
)
def test_triplets_repeat_the_edge_frame_at_sequence_ends(t, n, k, expected):
    assert triplet_indices(t, n, k) == expected


def test_triplets_k_frames_apart_repeat_the_edge_frame_too():
    assert triplet_indices(5, 20, 3, step=3) == [2, 5, 8]
    assert triplet_indices(1, 20, 3, step=2) == [0, 1, 3]
    assert triplet_indices(18, 20, 5, step=2) == [14, 16, 18, 19, 19]


def _steps(stream, n_frames=20):
    """(video, frame) -> the frame step of each sample, checking that its clip is t-k, t, t+k (frames encode
    their index as 10 * i)."""
    out = {}
    for s in stream:
        clip = [int(f[0, 0, 0]) // 10 for f in s["frames"]]
        (k,) = [k for k in (1, 2, 3) if triplet_indices(s["frame_id"], n_frames, 3, step=k) == clip]
        out[(s["video_id"], s["frame_id"])] = k
    return out


def test_training_clips_take_frames_up_to_max_frame_step_apart_and_evaluation_consecutive_ones(tmp_path):
    seqs = [_image_sequence(tmp_path, "a", 20), _image_sequence(tmp_path, "b", 20)]
    train = TripletStream(seqs, shuffle=True, chunk_len=4, batch_size=4, max_frame_step=3, seed=7)
    train.set_epoch(0)
    steps = _steps(train)
    assert len(steps) == 40 and set(steps.values()) == {1, 2, 3}
    again = TripletStream(seqs, shuffle=True, chunk_len=4, batch_size=4, max_frame_step=3, seed=7)
    again.set_epoch(0)
    assert _steps(again) == steps  # drawn from the seed: the same for any worker count or resumed run
    again.set_epoch(1)
    assert _steps(again) != steps  # and anew every epoch
    evaluation = TripletStream(seqs, shuffle=False, chunk_len=4, max_frame_step=3)
    assert set(_steps(evaluation).values()) == {1}
    with pytest.raises(ValueError, match=r"max_frame_step=0: must be >= 1"):
        TripletStream(seqs, max_frame_step=0)


def _image_sequence(root: Path, name: str, n: int, annotated=None) -> VideoSequence:
    """Frames whose pixel value encodes the frame index, so tests can see which frame went where."""
    (root / name).mkdir(parents=True)
    frames, masks = [], []
    for i in range(n):
        f = root / name / f"{i:05d}.png"
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(f)
        frames.append(f)
        if annotated is None or i in annotated:
            m = root / name / f"{i:05d}_mask.png"
            Image.fromarray(np.full((8, 8), 255 * (i % 2), np.uint8)).save(m)
            masks.append(m)
        else:
            masks.append(None)
    return VideoSequence(name, tuple(frames), tuple(masks))


def test_stream_yields_every_annotated_frame_once_with_its_neighbours(tmp_path):
    seqs = [_image_sequence(tmp_path, "a", 5), _image_sequence(tmp_path, "b", 2), _image_sequence(tmp_path, "c", 6, {1, 4})]
    stream = TripletStream(seqs, chunk_len=2)
    samples = list(stream)
    assert len(samples) == len(stream) == 5 + 2 + 2
    seen = {(s["video_id"], s["frame_id"]) for s in samples}
    assert seen == {(0, i) for i in range(5)} | {(1, 0), (1, 1)} | {(2, 1), (2, 4)}
    for s in samples:
        n = len(seqs[s["video_id"]].masks)
        expected = [10 * i for i in triplet_indices(s["frame_id"], n)]
        assert [int(f[0, 0, 0]) for f in s["frames"]] == expected
        assert s["mask"].max() == s["frame_id"] % 2


def test_frames_are_decoded_once_per_chunk(tmp_path, monkeypatch):
    seq = _image_sequence(tmp_path, "a", 10)
    reads = []
    from salvid.data import sources

    original = sources.ImageFolder.read

    def counting_read(self, indices):
        reads.append(list(indices))
        return original(self, indices)

    monkeypatch.setattr(sources.ImageFolder, "read", counting_read)
    list(TripletStream([seq], chunk_len=10))
    assert reads == [list(range(10))]  # one ascending read, each frame once, not 3 per triplet
    reads.clear()
    list(TripletStream([seq], chunk_len=4))
    # across chunks too: the next chunk gets the neighbours already decoded, so reads never go back
    assert reads == [[0, 1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_training_shuffle_changes_with_epoch_and_keeps_the_sample_set(tmp_path):
    seqs = [_image_sequence(tmp_path, n, 6) for n in "abcd"]
    stream = TripletStream(seqs, shuffle=True, chunk_len=3, buffer_size=4, seed=1)
    order0 = [(s["video_id"], s["frame_id"]) for s in stream]
    stream.set_epoch(1)
    order1 = [(s["video_id"], s["frame_id"]) for s in stream]
    assert sorted(order0) == sorted(order1) == sorted((v, f) for v in range(4) for f in range(6))
    assert order0 != order1


def test_chunks_cover_only_annotated_frames(tmp_path):
    seq = _image_sequence(tmp_path, "a", 7, {0, 3, 6})
    assert [c.targets for c in make_chunks([seq], 2)] == [(0, 3), (6,)]
