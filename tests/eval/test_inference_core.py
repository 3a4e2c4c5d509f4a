import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, calibrated

from salvid.data.preprocess import normalise, resize_frame
from salvid.data.sources import FrameSource
from salvid.data.stream import triplet_indices
from salvid.errors import ConfigError
from salvid.inference.core import NetworkSaliency, iter_batches, iter_clips
from salvid.models import FusionNet3D, SaliencyNet3D
from salvid.runtime.precision import autocast_dtype
from tests.helpers.networks import assert_varied


class CountingSource(FrameSource):
    """Frames whose pixels encode their index; records every frame decoded."""

    def __init__(self, n: int, size=(24, 40)):
        self.n, self._size, self.decoded, self.path = n, size, [], "counting"

    def __len__(self):
        return self.n

    @property
    def size(self):
        return self._size

    def _decode(self, indices):
        self.decoded += indices.tolist()
        return np.stack([np.full((*self._size, 3), i, dtype=np.uint8) for i in indices])


@pytest.mark.parametrize("targets", [None, [0, 5, 6, 12, 19], [19]])
def test_clips_decode_each_frame_once_with_edge_padding(targets):
    source = CountingSource(20)
    got = [(t, [int(f[0, 0, 0]) for f in clip]) for t, clip in iter_clips(source, 3, targets, chunk_len=4)]
    expected_targets = list(range(20)) if targets is None else targets
    assert [t for t, _ in got] == expected_targets
    assert all(frames == triplet_indices(t, 20, 3) for t, frames in got)
    needed = sorted({i for t in expected_targets for i in triplet_indices(t, 20, 3)})
    assert source.decoded == needed  # each needed frame once, ascending, nothing else


def test_batches_group_clips_and_keep_the_last_partial_batch():
    batches = list(iter_batches(CountingSource(10), 5, batch_size=4))
    assert [ids for ids, _ in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(len(clip) == 5 for _, clips in batches for clip in clips)


class NoiseSource(CountingSource):
    """Random frames, frame i from seed i."""

    def _decode(self, indices):
        self.decoded += indices.tolist()
        return np.stack([np.random.default_rng(int(i)).integers(0, 256, (*self._size, 3), dtype=np.uint8)
                         for i in indices])


def test_network_maps_are_the_networks_own_upsampled_to_the_frame_resolution():
    torch.manual_seed(0)
    net = calibrated(SaliencyNet3D(**TINY))
    source = NoiseSource(5, size=(37, 53))
    maps = list(NetworkSaliency(net, precision="fp32").stream(source, batch_size=2))
    assert [p.index for p in maps] == list(range(5))
    assert all(p.saliency.shape == (37, 53) and p.frame.shape == (37, 53, 3) for p in maps)
    frames = source._decode(np.arange(5))
    for p in maps:  # the clip t-1, t, t+1 (edges repeated), resized and normalised as in training, upsampled back
        clip = np.stack([resize_frame(frames[i], net.input_size) for i in triplet_indices(p.index, 5, 3)])
        with torch.no_grad():
            own = net(normalise(torch.from_numpy(clip)).transpose(0, 1)[None])
        own = F.interpolate(own, size=(37, 53), mode="bilinear", align_corners=False)[0, 0].numpy()
        assert_varied(own[None])
        np.testing.assert_allclose(p.saliency, own, atol=1e-4, rtol=0)  # batch size changes kernels
        np.testing.assert_array_equal(p.frame, frames[p.index])


def test_frames_sent_as_uint8_and_normalised_on_the_device_give_the_same_maps():
    """On the CPU, stream's background thread normalises frames by table lookup; on a GPU it leaves them uint8
    and the device normalises them (training's own operations); the maps are the same (here both ways on the
    CPU, through stream's prepared inputs and predict's own)."""
    torch.manual_seed(0)
    net = calibrated(FusionNet3D(input_size=(64, 96), pretrained="none", widths=(8, 8, 8, 16, 16)))
    source = NoiseSource(7, size=(45, 70))
    runs = {}
    for on_device in (False, True):
        runner = NetworkSaliency(net, precision="fp32", backend="torch")
        runner.normalise_on_device = on_device
        prepared = runner._inputs(source._decode(np.arange(2)))
        assert {x.dtype for x in prepared.values()} == {torch.uint8 if on_device else torch.float32}
        runs[on_device] = np.stack([p.saliency for p in runner.stream(source, batch_size=3)])
    assert_varied(runs[False])
    np.testing.assert_array_equal(runs[True], runs[False])


@pytest.mark.parametrize("overlap", ["network", "caller"])
def test_stream_gives_the_same_maps_in_order_whichever_stages_overlap(overlap):
    """Decoding on a background thread, beside the network (GPU) or between its batches (CPU), changes when
    frames are prepared, never the maps or their order; the frame-feature cache follows the stream either way."""
    torch.manual_seed(0)
    net = calibrated(FusionNet3D(input_size=(64, 96), pretrained="none", widths=(8, 8, 8, 16, 16)))
    source = NoiseSource(11, size=(45, 70))
    plain = list(NetworkSaliency(net, precision="fp32", backend="torch").stream(source, batch_size=3))
    runner = NetworkSaliency(net, precision="fp32", backend="torch")
    overlapped = list(runner.stream(source, batch_size=3, chunk_len=3, overlap=overlap))
    assert [p.index for p in overlapped] == [p.index for p in plain] == list(range(11))
    assert_varied(np.stack([p.saliency for p in plain]))
    for a, b in zip(overlapped, plain, strict=True):
        np.testing.assert_array_equal(a.saliency, b.saliency)
        np.testing.assert_array_equal(a.frame, b.frame)
    assert runner.seconds["decode"] > 0 and runner.seconds["forward"] > 0
    with pytest.raises(ValueError, match="overlap='cpu'"):
        next(runner.stream(source, overlap="cpu"))


def test_bf16_maps_match_fp32_within_the_documented_tolerance():
    """bf16 autocast vs fp32 on an untrained (BatchNorm-calibrated) tiny network and random frames: the
    documented tolerance is a mean absolute difference below 0.05 and a per-map correlation above 0.9
    (measured: mean 0.013, correlation >= 0.95; single pixels can differ by up to ~0.25)."""
    torch.manual_seed(0)
    net = calibrated(SaliencyNet3D(**TINY))
    rng = np.random.default_rng(0)
    clips = [[rng.integers(0, 255, (72, 96, 3), dtype=np.uint8) for _ in range(3)] for _ in range(6)]
    fp32 = NetworkSaliency(net, precision="fp32").predict(clips)
    assert_varied(fp32)  # a flat map would make the comparison meaningless
    for channels_last in (False, True):
        bf16 = NetworkSaliency(net, precision="bf16", channels_last=channels_last).predict(clips)
        assert np.abs(bf16 - fp32).mean() < 0.05
        assert min(np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(fp32, bf16, strict=True)) > 0.9


def test_fp32_runs_channels_last_by_default_with_the_contiguous_maps():
    """channels_last=auto is on in fp32 too (no slower where measured, docs/performance.md); the maps are those
    of the contiguous layout up to float rounding."""
    torch.manual_seed(0)
    net = calibrated(SaliencyNet3D(**TINY))
    rng = np.random.default_rng(1)
    clips = [[rng.integers(0, 255, (72, 96, 3), dtype=np.uint8) for _ in range(3)] for _ in range(4)]
    contiguous = NetworkSaliency(net, precision="fp32", channels_last=False, backend="torch").predict(clips)
    assert not net.channels_last
    auto = NetworkSaliency(net, precision="fp32", channels_last="auto", backend="torch").predict(clips)
    assert net.channels_last
    assert_varied(contiguous)
    np.testing.assert_allclose(auto, contiguous, atol=1e-5)
    with pytest.raises(ConfigError, match="channels_last='yes': must be auto, true or false"):
        NetworkSaliency(net, precision="fp32", channels_last="yes", backend="torch")


def test_precision_choices():
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="precision='fp16'"):
        autocast_dtype("fp16", torch.device("cpu"))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_a_map_that_is_not_finite_is_an_error_not_a_black_map(backend):
    from salvid.errors import CheckpointError

    net = calibrated(SaliencyNet3D(**TINY))
    with torch.no_grad():
        next(p for p in net.parameters() if p.ndim == 5)[0].fill_(float("nan"))  # one damaged filter
    runner = NetworkSaliency(net, "damaged", device="cpu", precision="fp32", backend=backend, model_config=TINY)
    frames = [np.full((40, 56, 3), v, np.uint8) for v in (30, 90, 150)]
    with pytest.raises(CheckpointError, match=r"damaged: the network's maps of frames \[0, 1\] hold NaN or infinite"):
        runner.predict([frames, frames], [0, 1])


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_with_onnxruntime_torchs_own_operations_run_on_the_calling_thread(backend, monkeypatch):
    """ONNX Runtime computes the network on its own threads; torch's operations around it (stacking the cached
    features) run on one thread, so no torch worker thread is left spinning beside ONNX Runtime's and predict's.
    The caller's thread count is restored, also after an error; PyTorch's network keeps its threads."""
    net = calibrated(FusionNet3D(input_size=(64, 96), pretrained="none", widths=(8, 8, 8, 16, 16)))
    runner = NetworkSaliency(net, device="cpu", precision="fp32", backend=backend)
    frames = [np.full((45, 70, 3), v, np.uint8) for v in (30, 90, 150)]
    reference = NetworkSaliency(net, device="cpu", precision="fp32", backend="torch").predict([frames, frames[::-1]])
    seen = {"stack": [], "interpolate": []}
    stack, interpolate = torch.stack, F.interpolate
    monkeypatch.setattr(torch, "stack", lambda *a, **k: seen["stack"].append(torch.get_num_threads()) or stack(*a, **k))
    monkeypatch.setattr(F, "interpolate",
                        lambda *a, **k: seen["interpolate"].append(torch.get_num_threads()) or interpolate(*a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        maps = runner.predict([frames, frames[::-1]])
        if backend == "onnxruntime":
            assert seen["stack"] and set(seen["stack"]) == {1} and seen["interpolate"] == []
        else:  # the decoder's own upsampling, on both threads
            assert seen["interpolate"] and set(seen["interpolate"]) == {2}
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(torch, "stack", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            runner.predict([frames])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(maps, reference, atol=1e-4)
