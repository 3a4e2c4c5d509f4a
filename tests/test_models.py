import pytest
import torch

from salvid.models import SaliencyNet3D

SMALL = dict(width_mult=0.125, input_size=(64, 64))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"in_frames": 1},
        {"in_frames": 5},
        {"temporal_pool": "ceil"},
        {"pool_order": "conv_pool", "unpool": "max"},
        {"pool_strides": [[1, 2, 2]] * 5},
        {"pool_strides": [[2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]]},
        {"trim_temporal_kernels": False},
        {"input_size": (64, 96)},
        {"output_activation": "clamp"},
    ],
)
def test_output_is_a_map_at_input_resolution(kwargs):
    net = SaliencyNet3D(**{**SMALL, **kwargs}).eval()
    h, w = net.input_size
    x = torch.randn(2, 3, net.in_frames, h, w)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 1, h, w)
    assert y.min() >= 0 and y.max() <= 1


def test_paper_reading_pools_224_to_7_and_collapses_time():
    net = SaliencyNet3D(width_mult=0.125)
    feats, sizes, _ = net.encoder(torch.randn(1, 3, 3, 224, 224))
    assert feats.shape[-3:] == (1, 7, 7)
    assert sizes == [(224, 224), (112, 112), (56, 56), (28, 28), (14, 14)]


def test_trimmed_kernels_compute_the_same_function():
    """At T=1 a 3x3x3 kernel with zero padding only uses its centre slice: copying that slice into a 1x3x3
    kernel must give identical outputs."""
    torch.manual_seed(0)
    full = SaliencyNet3D(**SMALL, trim_temporal_kernels=False).eval()
    trim = SaliencyNet3D(**SMALL, trim_temporal_kernels=True).eval()
    state = {}
    for k, v in full.state_dict().items():
        target = trim.state_dict()[k]
        state[k] = v[:, :, 1:2] if v.shape != target.shape else v
    trim.load_state_dict(state)
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(trim(x), full(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"input_size": (100, 64)}, "model.input_size"),
        ({"temporal_pool": "floor"}, "model.pool_strides"),
        ({"pool_strides": [[1, 2, 2]] * 4}, "model.widths"),
        ({"pool_strides": [[1, 2, 2]] * 4 + [[0, 2, 2]]}, "model.pool_strides"),
        ({"in_frames": 2}, "model.in_frames"),
        ({"unpool": "max"}, "model.unpool=max"),
        ({"width_mult": 0}, "model.width_mult"),
        ({"pool_order": "sideways"}, "model.pool_order"),
    ],
)
def test_invalid_configurations_fail_at_construction_naming_the_value(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SaliencyNet3D(**{**SMALL, **kwargs})


def test_wrong_input_shape_is_a_clear_error():
    net = SaliencyNet3D(**SMALL)
    with pytest.raises(ValueError, match=r"expected input \(N, 3, 3"):
        net(torch.randn(1, 3, 5, 64, 64))
