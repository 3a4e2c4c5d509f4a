"""tta=flip: each map is the mean of the map of the clip and the mirrored-back map of its mirror image."""

import numpy as np
import pytest
import torch
from conftest import TINY, calibrated
from torch import nn

import salvid
from salvid.errors import ConfigError
from salvid.inference.core import NetworkSaliency
from salvid.inference.tta import FlipAveraged, network_saliency
from salvid.models import FusionNet3D, SaliencyNet3D
from tests.helpers.networks import assert_varied


class Frames:
    """Frames in memory as a frame source (the part :func:`iter_batches` reads)."""

    def __init__(self, frames):
        self.frames = frames

    def __len__(self):
        return len(self.frames)

    def read(self, indices):
        return [self.frames[i] for i in indices]


def maps(runner, frames, batch_size=4):
    return np.stack([p.saliency for p in runner.stream(Frames(frames), batch_size)])


def random_frames(n=9, size=(37, 53), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def fusion_net():
    torch.manual_seed(0)
    return calibrated(FusionNet3D(input_size=(64, 96), pretrained="none"))


NETWORKS = {"paper": lambda: (torch.manual_seed(0), calibrated(SaliencyNet3D(**TINY)))[1], "fusion3d": fusion_net}


@pytest.mark.parametrize("family", list(NETWORKS))
def test_flip_is_the_mean_of_the_map_and_the_mirrored_map_of_the_mirrored_clip(family):
    net = NETWORKS[family]()
    frames = random_frames()
    options = {"device": "cpu", "precision": "fp32", "channels_last": False, "backend": "torch"}
    plain = maps(NetworkSaliency(net, **options), frames)
    mirrored = maps(NetworkSaliency(net, **options), [np.ascontiguousarray(f[:, ::-1]) for f in frames])
    assert_varied(plain)
    assert np.abs(plain - mirrored[:, :, ::-1]).max() > 1e-3  # the network is not mirror-symmetric
    flipped = maps(network_saliency(net, tta="flip", **options), frames)  # three batches: the caches carry over
    assert flipped.dtype == np.float32
    np.testing.assert_allclose(flipped, (plain + mirrored[:, :, ::-1]) / 2, atol=1e-5, rtol=0)


def test_fusion3d_encodes_each_frame_once_per_direction(monkeypatch):
    net = fusion_net()
    encoded = []
    encode = net.encode_frames
    monkeypatch.setattr(net, "encode_frames", lambda x: (encoded.append(len(x)), encode(x))[1])
    runner = network_saliency(net, tta="flip", device="cpu", precision="fp32", backend="torch")
    maps(runner, random_frames(11), batch_size=4)
    assert sum(encoded) == 2 * 11


class PixelNet(nn.Module):
    """A network that maps each pixel on its own: mirroring its input mirrors its map."""

    in_frames, input_size, channels_last = 3, (32, 48), False

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

    def use_channels_last(self, enabled):
        pass

    def logits(self, x):  # (N, 3, T, h, w) -> (N, 1, h, w)
        return torch.einsum("ncthw,c->nhw", x, self.weight)[:, None] / x.shape[2]

    def activate(self, logits):
        return torch.sigmoid(logits)


def test_flip_changes_nothing_where_mirroring_the_input_mirrors_the_map():
    frames = random_frames()
    options = {"device": "cpu", "precision": "fp32", "backend": "torch"}
    plain = maps(network_saliency(PixelNet(), **options), frames)
    assert_varied(plain)
    np.testing.assert_allclose(maps(network_saliency(PixelNet(), tta="flip", **options), frames), plain, atol=1e-5)


def test_the_flip_map_of_a_mirror_symmetric_clip_is_mirror_symmetric():
    """A convolutional network's map of a symmetric input need not be symmetric (strides, padding and kernels
    are not); the flip map is, and it is the tta=none map averaged with its mirror image."""
    half = random_frames(size=(37, 27))
    frames = [np.concatenate([f, f[:, ::-1]], axis=1) for f in half]
    net = NETWORKS["paper"]()
    options = {"device": "cpu", "precision": "fp32", "backend": "torch"}
    plain = maps(network_saliency(net, **options), frames)
    flipped = maps(network_saliency(net, tta="flip", **options), frames)
    np.testing.assert_allclose(flipped, flipped[:, :, ::-1], atol=1e-6)
    np.testing.assert_allclose(flipped, (plain + plain[:, :, ::-1]) / 2, atol=1e-5)


def test_the_python_api_takes_tta(tiny_pretrained):
    frames = random_frames(4)
    model = salvid.load(tiny_pretrained, precision="fp32", tta="flip")
    assert isinstance(model.runner, FlipAveraged)
    plain = salvid.load(tiny_pretrained, precision="fp32").predict(frames)
    mirrored = salvid.load(tiny_pretrained, precision="fp32").predict([np.ascontiguousarray(f[:, ::-1]) for f in frames])
    np.testing.assert_allclose(model.predict(frames), (plain + mirrored[:, :, ::-1]) / 2, atol=1e-5)
    with pytest.raises(ConfigError, match="tta='foo': must be one of none, flip"):
        salvid.load(tiny_pretrained, tta="foo")
