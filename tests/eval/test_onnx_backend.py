"""backend=onnxruntime: the same maps as PyTorch in fp32, graphs exported once into the cache, keyed by the
weights; bad settings named in one line."""

import numpy as np
import pytest
import torch
from conftest import TINY, calibrated

from salvid.errors import ConfigError
from salvid.inference import onnx_backend
from salvid.inference.core import NetworkSaliency
from salvid.models import FusionNet3D, SaliencyNet3D
from tests.eval.test_inference_core import NoiseSource
from tests.helpers.networks import assert_varied

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SALVID_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def paper_net():
    torch.manual_seed(0)
    return calibrated(SaliencyNet3D(**TINY))


def fusion_net():
    torch.manual_seed(0)
    return calibrated(FusionNet3D(input_size=(64, 96), pretrained="none", widths=(8, 8, 8, 16, 16)))


def maps(runner, frames=7, size=(45, 70)):
    return np.stack([p.saliency for p in runner.stream(NoiseSource(frames, size=size), batch_size=3)])


@pytest.mark.parametrize("build", [paper_net, fusion_net], ids=["paper", "fusion3d"])
def test_onnx_maps_equal_torch_fp32_maps(build, own_cache):
    net = build()
    torch_maps = maps(NetworkSaliency(net, precision="fp32", backend="torch"))
    runner = NetworkSaliency(net, precision="fp32", backend="onnxruntime")
    assert runner.backend == "onnxruntime" and not isinstance(runner.compute, torch.nn.Module)
    onnx_maps = maps(runner)  # 3 batches: fusion3d reuses each frame's features across them
    assert_varied(torch_maps)
    assert np.abs(onnx_maps - torch_maps).max() <= 1e-4
    graphs = {p.name for p in own_cache.glob("onnx/*/*.onnx")}
    assert graphs == ({"encoder.onnx", "decoder.onnx"} if build is fusion_net else {"network.onnx"})


def test_graphs_are_exported_once_and_a_changed_weight_gets_new_ones(own_cache, monkeypatch):
    net = paper_net()
    before = maps(NetworkSaliency(net, precision="fp32", backend="onnxruntime"))
    (folder,) = (own_cache / "onnx").iterdir()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")
    with monkeypatch.context() as m:
        m.setattr(onnx_backend, "write_graphs", no_export)
        again = maps(NetworkSaliency(net, precision="fp32", backend="onnxruntime"))  # from the cache
    np.testing.assert_array_equal(again, before)

    with torch.no_grad():
        next(p for name, p in net.named_parameters() if name.endswith("weight")).mul_(-1.5)
    changed = maps(NetworkSaliency(net, precision="fp32", backend="onnxruntime"))
    assert {p.name for p in (own_cache / "onnx").iterdir()} == {folder.name, onnx_backend.graph_key(net)}
    assert onnx_backend.graph_key(net) != folder.name
    assert np.abs(changed - before).max() > 1e-3  # the new weights' maps, not the old graph's
    torch_changed = maps(NetworkSaliency(net, precision="fp32", backend="torch"))
    assert np.abs(changed - torch_changed).max() <= 1e-4


def test_the_key_covers_the_model_config_and_input_size():
    net = paper_net()
    assert onnx_backend.graph_key(net, {"family": "paper"}) != onnx_backend.graph_key(net, {"family": "paper",
                                                                                             "x": 1})
    other = SaliencyNet3D(**{**TINY, "input_size": [32, 32]})
    other.load_state_dict(net.state_dict())
    assert onnx_backend.graph_key(other) != onnx_backend.graph_key(net)


def test_an_incomplete_export_is_exported_again(own_cache):
    net = paper_net()
    NetworkSaliency(net, precision="fp32", backend="onnxruntime")
    (folder,) = (own_cache / "onnx").iterdir()
    (folder / "network.onnx").unlink()
    runner = NetworkSaliency(net, precision="fp32", backend="onnxruntime")
    assert (folder / "network.onnx").is_file() and runner.predict([[np.zeros((8, 8, 3), np.uint8)] * 3]).shape == (
        1, 8, 8)


def test_auto_uses_onnxruntime_on_a_cpu_unless_bf16_is_asked_for(monkeypatch):
    cpu = torch.device("cpu")
    probed = []
    monkeypatch.setattr(onnx_backend, "autocast_dtype", lambda precision, device: probed.append(precision) or (
        torch.bfloat16 if precision in ("auto", "bf16") else None))  # a CPU where bf16 is measured faster
    assert onnx_backend.resolve_backend("auto", "auto", cpu) == ("onnxruntime", None)
    assert onnx_backend.resolve_backend("auto", "fp32", cpu) == ("onnxruntime", None)
    assert not probed  # ONNX Runtime runs fp32: nothing to measure
    assert onnx_backend.resolve_backend("auto", "bf16", cpu) == ("torch", torch.bfloat16)
    assert onnx_backend.resolve_backend("torch", "auto", cpu) == ("torch", torch.bfloat16)  # the probe decides
    assert onnx_backend.resolve_backend("auto", "auto", torch.device("cuda"))[0] == "torch"
    monkeypatch.setattr(onnx_backend, "onnxruntime_available", lambda: False)
    assert onnx_backend.resolve_backend("auto", "auto", cpu) == ("torch", torch.bfloat16)


@pytest.mark.parametrize(("backend", "precision", "device", "match"), [
    ("foo", "auto", "cpu", "backend='foo': must be one of auto, torch, onnxruntime"),
    ("onnxruntime", "bf16", "cpu", "precision=bf16 with backend=onnxruntime"),
    ("onnxruntime", "auto", "cuda", "backend=onnxruntime runs on the CPU"),
    ("onnxruntime", "fp16", "cpu", "precision='fp16'"),
])
def test_bad_backend_settings_name_the_key(backend, precision, device, match):
    with pytest.raises(ConfigError, match=match):
        onnx_backend.resolve_backend(backend, precision, torch.device(device))


def test_onnxruntime_missing_when_asked_for_says_what_to_do(monkeypatch):
    monkeypatch.setattr(onnx_backend, "onnxruntime_available", lambda: False)
    with pytest.raises(ConfigError, match="backend=onnxruntime: onnxruntime and onnx are not installed; pip install"):
        NetworkSaliency(paper_net(), backend="onnxruntime")
