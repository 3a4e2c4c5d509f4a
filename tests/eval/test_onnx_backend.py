"""backend=onnxruntime: the same maps as PyTorch in fp32, graphs exported once into the cache, keyed by the
weights; backend=auto: the fastest measured for the network, the timings kept per machine and network; bad settings
named in one line."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY, calibrated

from salvid.errors import ConfigError
from salvid.inference import backends, onnx_backend
from salvid.inference.core import NetworkSaliency
from salvid.inference.onnx_rewrite import fold_pads_into_convs
from salvid.models import FusionNet3D, SaliencyNet3D
from salvid.models.efficientnet_lite import SameConv2d
from tests.eval.test_inference_core import NoiseSource
from tests.helpers.networks import assert_varied

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


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


def light_fusion_net():
    torch.manual_seed(0)
    return calibrated(FusionNet3D(input_size=(64, 96), pretrained="none", widths=(8, 8, 8, 16, 16),
                                  convs="separable", decoder_stride=4))


def light_fusion_net_with_pixels():
    torch.manual_seed(0)
    return calibrated(FusionNet3D(input_size=(64, 96), pretrained="none", widths=(8, 8, 8, 16, 16),
                                  convs="separable", decoder_stride=4, pixel_skip=True))


def maps(runner, frames=7, size=(45, 70)):
    return np.stack([p.saliency for p in runner.stream(NoiseSource(frames, size=size), batch_size=3)])


@pytest.mark.parametrize("build", [paper_net, fusion_net, light_fusion_net, light_fusion_net_with_pixels],
                         ids=["paper", "fusion3d", "fusion3d-separable-stride4", "fusion3d-pixel-skip"])
def test_onnx_maps_equal_torch_fp32_maps(build, own_cache):
    net = build()
    torch_maps = maps(NetworkSaliency(net, precision="fp32", backend="torch"))
    runner = NetworkSaliency(net, precision="fp32", backend="onnxruntime")
    assert runner.backend == "onnxruntime" and not isinstance(runner.compute, torch.nn.Module)
    onnx_maps = maps(runner)  # 3 batches: fusion3d reuses each frame's features across them
    assert_varied(torch_maps)
    assert np.abs(onnx_maps - torch_maps).max() <= 1e-4
    graphs = {p.name for p in own_cache.glob("onnx/*/*.onnx")}
    assert graphs == ({"network.onnx"} if build is paper_net else {"encoder.onnx", "decoder.onnx"})


def test_the_cached_encoder_keeps_no_pad_of_its_same_padding(own_cache):
    net = fusion_net()
    assert any(m.stride[0] > 1 for m in net.modules() if isinstance(m, SameConv2d))  # it pads before them
    folder = onnx_backend.cached_graphs(net)
    encoder = onnx.load(str(folder / "encoder.onnx"))
    ops = [n.op_type for n in encoder.graph.node]
    assert "Conv" in ops and "Pad" not in ops and "Shape" not in ops
    assert [(o.domain, o.version) for o in encoder.opset_import] == [("", 18)]  # standard ONNX only, as exported
    onnx.checker.check_model(encoder)


def _pad_conv_model(pad_value: float, also: str | None):
    """x -> Pad (bottom/right by one) -> Conv 3x3 stride 2; ``also``: the padded tensor also feeds a Relu
    (``"relu"``), is also a graph output (``"output"``), or the Pad names its axes (``"axes"``)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "pads"),
             numpy_helper.from_array(np.array(pad_value, np.float32), "value"),
             numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")]
    if also == "axes":
        inits.append(numpy_helper.from_array(np.array([0, 1, 2, 3], np.int64), "axes"))
    pad_inputs = ["x", "pads", "value", "axes"] if also == "axes" else ["x", "pads", "value"]
    nodes = [helper.make_node("Pad", pad_inputs, ["padded"]),
             helper.make_node("Conv", ["padded", "w"], ["y"], strides=[2, 2], pads=[1, 0, 0, 1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if also == "relu":
        nodes.append(helper.make_node("Relu", ["padded"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    if also == "output":
        outputs.append(helper.make_tensor_value_info("padded", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 10])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize(("pad_value", "also", "folded"), [(0.0, None, 1), (0.5, None, 0), (0.0, "relu", 0),
                                                           (0.0, "output", 0), (0.0, "axes", 0)])
def test_a_zero_pad_folds_into_its_convolution_and_the_outputs_stay_the_same(pad_value, also, folded):
    import onnxruntime as ort

    model = _pad_conv_model(pad_value, also)
    x = np.random.default_rng(1).standard_normal((1, 2, 8, 10)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert fold_pads_into_convs(model) == folded
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Pad") == 1 - folded
    if folded:
        conv = next(n for n in model.graph.node if n.op_type == "Conv")
        assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [1, 0, 1, 2]  # H, W begin; end
        assert {t.name for t in model.graph.initializer} == {"w"}  # the pad's amounts and value went with it
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


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


CPU = torch.device("cpu")
FP32, BF16 = None, torch.bfloat16


@pytest.fixture
def bf16_pays(monkeypatch):
    """A CPU where the bf16 probe says bf16 may pay: all three backends are candidates."""
    monkeypatch.setattr(backends, "bf16_is_faster", lambda: True)


def timed(onnxruntime=None, torch_fp32=None, torch_bf16=None):
    """A stand-in for the backend probe that reports these seconds and counts its calls (by network)."""
    seconds = {"onnxruntime fp32": onnxruntime, "torch fp32": torch_fp32, "torch bf16": torch_bf16}
    calls = []

    def probe(net, model_config, names):
        calls.append(onnx_backend.graph_key(net, model_config))
        return {name: seconds[name] for name in names}
    return probe, calls


@pytest.mark.parametrize(("seconds", "expected"), [
    ({"onnxruntime": 0.1, "torch_fp32": 0.3, "torch_bf16": 0.2}, ("onnxruntime", FP32)),
    ({"onnxruntime": 0.3, "torch_fp32": 0.4, "torch_bf16": 0.1}, ("torch", BF16)),
    ({"onnxruntime": 0.3, "torch_fp32": 0.1, "torch_bf16": 0.2}, ("torch", FP32)),
], ids=["onnxruntime", "torch-bf16", "torch-fp32"])
def test_auto_on_a_cpu_runs_the_backend_measured_fastest_and_keeps_the_timings(bf16_pays, own_cache, monkeypatch,
                                                                                seconds, expected):
    probe, calls = timed(**seconds)
    monkeypatch.setattr(backends, "probe_backends", probe)
    net = paper_net()
    assert backends.resolve_backend("auto", "auto", CPU, net, {"family": "paper"}) == expected
    assert backends.resolve_backend("auto", "auto", CPU, net, {"family": "paper"}) == expected
    assert len(calls) == 1  # the second answer came from the cache
    saved = json.loads((own_cache / "machine" / "backend.json").read_text())
    ((key, entry),) = saved.items()
    assert set(entry["seconds"]) == {"onnxruntime fp32", "torch fp32", "torch bf16"}
    import onnxruntime

    for part in (backends.cpu_model(), f"torch {torch.__version__}", f"onnxruntime {onnxruntime.__version__}",
                 f"{torch.get_num_threads()} threads", onnx_backend.graph_key(net, {"family": "paper"})):
        assert part in key


def test_auto_with_fp32_chooses_among_the_fp32_backends(bf16_pays, monkeypatch):
    probe, calls = timed(onnxruntime=0.3, torch_fp32=0.2, torch_bf16=0.1)
    monkeypatch.setattr(backends, "probe_backends", probe)
    net = paper_net()
    assert backends.resolve_backend("auto", "fp32", CPU, net) == ("torch", FP32)
    assert backends.resolve_backend("auto", "auto", CPU, net) == ("torch", BF16)  # the same timings
    assert len(calls) == 1


def test_a_changed_network_is_measured_on_its_own(bf16_pays, own_cache, monkeypatch):
    probe, calls = timed(onnxruntime=0.1, torch_fp32=0.3, torch_bf16=0.2)
    monkeypatch.setattr(backends, "probe_backends", probe)
    net = paper_net()
    assert backends.resolve_backend("auto", "auto", CPU, net)[0] == "onnxruntime"
    with torch.no_grad():
        next(p for name, p in net.named_parameters() if name.endswith("weight")).mul_(-1.5)
    probe, changed_calls = timed(onnxruntime=0.3, torch_fp32=0.4, torch_bf16=0.1)
    monkeypatch.setattr(backends, "probe_backends", probe)
    assert backends.resolve_backend("auto", "auto", CPU, net) == ("torch", BF16)
    assert changed_calls == [onnx_backend.graph_key(net)] and calls != changed_calls
    assert len(json.loads((own_cache / "machine" / "backend.json").read_text())) == 2


def test_explicit_settings_and_gpus_are_not_measured(bf16_pays, monkeypatch):
    def no_probe(*args, **kwargs):
        raise AssertionError("measured")
    monkeypatch.setattr(backends, "probe_backends", no_probe)
    monkeypatch.setattr(backends, "autocast_dtype", lambda precision, device: (
        BF16 if precision in ("auto", "bf16") else FP32))  # where precision=auto is bf16
    net = paper_net()
    assert backends.resolve_backend("onnxruntime", "auto", CPU, net) == ("onnxruntime", FP32)
    assert backends.resolve_backend("torch", "auto", CPU, net) == ("torch", BF16)
    assert backends.resolve_backend("torch", "fp32", CPU, net) == ("torch", FP32)
    assert backends.resolve_backend("auto", "bf16", CPU, net) == ("torch", BF16)
    assert backends.resolve_backend("auto", "auto", torch.device("cuda"), net) == ("torch", BF16)
    runner = NetworkSaliency(net, precision="fp32", backend="torch")
    assert runner.backend == "torch" and runner.compute is net


def test_without_onnxruntime_auto_measures_pytorchs_precisions(monkeypatch):
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    probe, calls = timed(torch_fp32=0.1, torch_bf16=0.2)
    monkeypatch.setattr(backends, "probe_backends", probe)
    net = paper_net()
    monkeypatch.setattr(backends, "bf16_is_faster", lambda: False)
    assert backends.resolve_backend("auto", "auto", CPU, net) == ("torch", FP32) and not calls  # one candidate
    monkeypatch.setattr(backends, "bf16_is_faster", lambda: True)
    assert backends.resolve_backend("auto", "auto", CPU, net) == ("torch", FP32) and len(calls) == 1


@pytest.mark.parametrize("winner", ["onnxruntime", "torch_fp32"])
@pytest.mark.parametrize("build", [paper_net, fusion_net], ids=["paper", "fusion3d"])
def test_the_chosen_fp32_backend_gives_torch_fp32_maps(bf16_pays, monkeypatch, build, winner):
    probe, calls = timed(**{"onnxruntime": 0.3, "torch_fp32": 0.3, "torch_bf16": 0.4, winner: 0.1})
    monkeypatch.setattr(backends, "probe_backends", probe)
    net = build()
    reference = maps(NetworkSaliency(net, precision="fp32", backend="torch"))
    runner = NetworkSaliency(net)  # backend=auto, precision=auto
    assert len(calls) == 1 and (runner.backend, runner.precision) == (winner.removesuffix("_fp32"), "fp32")
    assert_varied(reference)
    assert np.abs(maps(runner) - reference).max() <= 1e-4


@pytest.mark.parametrize("build", [paper_net, fusion_net], ids=["paper", "fusion3d"])
def test_the_real_probe_times_every_candidate_and_leaves_the_network_as_it_was(own_cache, monkeypatch, build):
    net = build()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    names = ["onnxruntime fp32", "torch fp32", "torch bf16"]
    seconds = backends.probe_backends(net, None, names, batch=2, rounds=1)
    assert set(seconds) == set(names) and all(v > 0 for v in seconds.values())
    assert not net.channels_last and all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert next(net.parameters()).is_contiguous()
    monkeypatch.setattr(backends, "bf16_is_faster", lambda: False)  # fp32 only: the maps can be compared
    runner = NetworkSaliency(net)
    (entry,) = json.loads((own_cache / "machine" / "backend.json").read_text()).values()
    assert runner.backend == min(entry["seconds"], key=entry["seconds"].get).split()[0]
    assert np.abs(maps(runner) - maps(NetworkSaliency(net, precision="fp32", backend="torch"))).max() <= 1e-4


@pytest.mark.parametrize("build", [paper_net, fusion_net], ids=["paper", "fusion3d"])
def test_the_probe_times_onnxruntime_as_inference_runs_it_with_torchs_operations_on_one_thread(monkeypatch, build):
    seen = []
    for name in ("logits", "encode_frames", "decode"):
        original = getattr(onnx_backend.OnnxNetwork, name)
        monkeypatch.setattr(onnx_backend.OnnxNetwork, name,
                            lambda self, x, _f=original: seen.append(torch.get_num_threads()) or _f(self, x))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backends.probe_backends(build(), None, ["onnxruntime fp32", "torch fp32"], batch=2, rounds=1)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_probe_stops_timing_clear_losers():
    now, calls = [0.0], []

    def run(name, *seconds):  # each call advances a fake clock by the next of ``seconds``
        left = list(seconds)

        def call():
            calls.append(name)
            now[0] += left.pop(0)
        return call
    runs = {"fast": run("fast", 1.0, 0.5, 0.6, 0.5), "lost at warm-up": run("lost at warm-up", 4.5),
            "lost in round 1": run("lost in round 1", 1.0, 1.1),
            "lucky once": run("lucky once", 1.1, 0.7, 0.4, 0.7)}
    seconds = backends.best_seconds(runs, rounds=3, slower=2.0, clock=lambda: now[0])
    # the median of the timed calls: one lucky call (0.4) does not make the scattered candidate the fastest
    assert seconds == pytest.approx({"fast": 0.5, "lost at warm-up": 4.5, "lost in round 1": 1.1, "lucky once": 0.7})
    assert {name: calls.count(name) for name in runs} == {"fast": 4, "lost at warm-up": 1, "lost in round 1": 2,
                                                          "lucky once": 4}


def test_a_corrupt_timings_file_is_measured_again(own_cache, bf16_pays, monkeypatch):
    (own_cache / "machine").mkdir(parents=True)
    (own_cache / "machine" / "backend.json").write_text("not json")
    probe, calls = timed(onnxruntime=0.3, torch_fp32=0.1, torch_bf16=0.2)
    monkeypatch.setattr(backends, "probe_backends", probe)
    assert backends.resolve_backend("auto", "auto", CPU, paper_net()) == ("torch", FP32) and len(calls) == 1


@pytest.mark.parametrize(("backend", "precision", "device", "match"), [
    ("foo", "auto", "cpu", "backend='foo': must be one of auto, torch, onnxruntime"),
    ("onnxruntime", "bf16", "cpu", "precision=bf16 with backend=onnxruntime"),
    ("onnxruntime", "auto", "cuda", "backend=onnxruntime runs on the CPU"),
    ("onnxruntime", "fp16", "cpu", "precision='fp16'"),
])
def test_bad_backend_settings_name_the_key(backend, precision, device, match):
    with pytest.raises(ConfigError, match=match):
        backends.resolve_backend(backend, precision, torch.device(device))


def test_onnxruntime_missing_when_asked_for_says_what_to_do(monkeypatch):
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    with pytest.raises(ConfigError, match="backend=onnxruntime: onnxruntime and onnx are not installed; pip install"):
        NetworkSaliency(paper_net(), backend="onnxruntime")
