from pathlib import Path

import pytest
import torch
import yaml

from salvid.models import SaliencyNet3D
from tests.helpers.networks import assert_varied, calibrated

SMALL = dict(width_mult=0.125, input_size=(64, 64))
PRESETS = {p.stem: yaml.safe_load(p.read_text())["pool_strides"]
           for p in sorted((Path(__file__).parents[1] / "conf" / "pool_strides").glob("*.yaml"))}
# A temporal stride in the first pool, before any convolution has mixed the frames, pools frames t-1 and t
# (kernel 2 over T=3) and drops frame t+1: the network never sees it.
DROPS_LAST_FRAME = pytest.mark.xfail(strict=True, reason="pool_order=pool_conv with a first temporal stride of 2 "
                                     "on 3 frames ignores frame t+1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"in_frames": 1},
        {"in_frames": 5},
        {"temporal_pool": "ceil"},
        {"pool_order": "conv_pool", "unpool": "max"},
        {"pool_strides": [[1, 2, 2]] * 5},
        pytest.param({"pool_strides": [[2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]]},
                     marks=DROPS_LAST_FRAME),
        {"trim_temporal_kernels": False},
        {"input_size": (64, 96)},
        {"output_activation": "clamp"},
        *(pytest.param({"pool_strides": strides}, id=f"preset-{name}",
                       marks=[DROPS_LAST_FRAME] if strides[0][0] > 1 else [])
          for name, strides in PRESETS.items()),
    ],
)
def test_output_is_a_map_at_input_resolution_from_every_input_frame(kwargs):
    torch.manual_seed(0)
    net = calibrated(SaliencyNet3D(**{**SMALL, **kwargs}))
    h, w = net.input_size
    x = torch.randn(2, 3, net.in_frames, h, w)
    with torch.no_grad():
        logits = net.logits(x)
        y = net(x)
        assert y.shape == (2, 1, h, w)
        assert_varied(y)
        activated = torch.sigmoid(logits) if kwargs.get("output_activation", "sigmoid") == "sigmoid" \
            else logits.clamp(0.0, 1.0)
        torch.testing.assert_close(y, activated, rtol=0, atol=0)
        for t in range(net.in_frames):  # the map of the centre frame depends on each frame of the clip
            changed = x.clone()
            changed[:, :, t] = torch.randn_like(changed[:, :, t])
            assert (net(changed) - y).abs().amax() > 1e-3, f"frame {t} of {net.in_frames} is ignored"
        other = x.clone()  # ... and on its own clip only
        other[1] = torch.randn_like(other[1])
        torch.testing.assert_close(net(other)[0], y[0], rtol=0, atol=1e-6)


def test_paper_reading_pools_224_to_7_and_collapses_time():
    net = SaliencyNet3D(width_mult=0.125)
    feats, sizes, _ = net.encoder(torch.randn(1, 3, 3, 224, 224))
    assert feats.shape[-3:] == (1, 7, 7)
    assert sizes == [(224, 224), (112, 112), (56, 56), (28, 28), (14, 14)]


def test_trimmed_kernels_compute_the_same_function():
    """At T=1 a 3x3x3 kernel with zero padding only uses its centre slice: copying that slice into a 1x3x3
    kernel must give identical outputs (on a calibrated network: an untrained one's flat map would hide a
    wrong slice)."""
    torch.manual_seed(0)
    full = calibrated(SaliencyNet3D(**SMALL, trim_temporal_kernels=False))
    trim = SaliencyNet3D(**SMALL, trim_temporal_kernels=True).eval()
    state = {}
    trimmed = 0
    for k, v in full.state_dict().items():
        target = trim.state_dict()[k]
        if v.shape != target.shape:
            state[k] = v[:, :, 1:2]
            trimmed += 1
        else:
            state[k] = v
    trim.load_state_dict(state)
    assert trimmed > 0
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        reference = full(x)
        assert_varied(reference)
        torch.testing.assert_close(trim(x), reference, rtol=1e-4, atol=1e-5)


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
