"""The benchmark runs end to end on tiny settings and reports every field (no timing checks); its parts
measure what they say: inference's own feature reuse, predict's own frames, the library's train step."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from salvid.bench import data, report
from salvid.bench.__main__ import parse_args
from salvid.bench.common import load_model, model_config
from salvid.bench.model import inference_forward, model_rates
from salvid.data.sources import ImageFolder
from salvid.inference.core import NetworkSaliency


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "salvid.bench", *args, "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "salvid bench" in proc.stdout  # the table was printed
    return json.loads(out.read_text())


@pytest.mark.slow
def test_bench_model_quick_writes_positive_numbers(tmp_path: Path):
    results = _bench(tmp_path, "model")
    assert results["machine"]["cores"] >= 1
    assert _positive(results["peak"]["fp32"])
    for name in ("tiny", "fusion3d"):  # the paper family and the pretrained-encoder family
        model = results["model"]["models"][name]
        assert model["input_size"] == [64, 64]
        assert _positive(model["gflop_per_frame"])
        assert model["gflop_per_train_sample"] > model["gflop_per_frame"]  # backward costs more than nothing
        for kind in ("forward", "train"):
            rows = model[kind]
            assert {(r["precision"], r["channels_last"]) for r in rows} >= {("fp32", False), ("fp32", True)}
            assert {r["backend"] for r in rows} == ({"torch", "onnxruntime"} if kind == "forward" else {"torch"})
            for row in rows:
                assert _positive(row["rate"]) and _positive(row["fraction_of_peak"]), row
    if "bf16" in results["peak"]:  # CPU with native bf16: the ISA-cap comparison ran both sides
        cap = results["model"]["isa_cap"]
        assert cap["model"] == "tiny"
        for side in ("capped", "uncapped"):
            assert _positive(cap[side]["bf16_matmul_gflops"])
    target = results["targets"][0]
    assert target["target"].startswith("tiny inference") and _positive(target["measured"])


@pytest.mark.slow
def test_bench_e2e_quick_compares_both_families_in_one_run(tmp_path: Path):
    results = _bench(tmp_path, "e2e")
    e2e = results["e2e"]
    assert e2e["video"] == "428x240" and e2e["outputs"] == "PNG maps"
    assert set(e2e["models"]) == {"tiny", "fusion3d"}
    for model in e2e["models"].values():
        run = model["1x"]
        assert run["frames"] == 24
        for key in ("fps", "bare_fps", "e2e_over_bare", "peak_rss_mb"):
            assert _positive(run[key]), (key, run)
        # the bare forward runs over the same frames before and after predict: total frames over total time
        before, after = run["bare_fps_before_after"]
        assert _positive(before) and _positive(after)
        assert min(before, after) * 0.999 <= run["bare_fps"] <= max(before, after) * 1.001
        assert run["e2e_over_bare"] == pytest.approx(run["bare_fps"] / run["fps"])
    assert e2e["models"]["tiny"]["2x"]["frames"] == 48 and _positive(e2e["rss_growth_2x"])
    goals = {t["target"] for t in results["targets"]}
    assert "fusion3d predict >= 30 frames/s (428x240, PNG maps)" in goals
    assert "fusion3d predict within 1.2x of its bare forward" in goals
    for model in e2e["models"].values():  # a row per backend and precision, with where the time went
        settings = {(r["backend"], r["precision"]) for k, r in model.items() if k.startswith("1x ")}
        assert {("torch", "fp32"), ("onnxruntime", "fp32")} <= settings
        for key, run in model.items():
            if key.startswith("1x"):
                assert set(run["stages_s"]) == {"decode", "resize", "forward", "upsample", "write"}
                assert _positive(run["stages_s"]["forward"]) and _positive(run["fps"])


@pytest.mark.slow
def test_bench_evaluate_quick_scores_the_network_alone(tmp_path: Path):
    results = _bench(tmp_path, "evaluate")
    ev = results["evaluate"]
    assert ev["frames"] == 24 and ev["sequences"] == 3 and ev["video"] == "428x240"
    assert ev["model"] == "fusion3d" and ev["method"] == "fusion3d" and ev["input_size"] == [64, 64]
    for key in ("seconds", "fps", "peak_rss_mb"):
        assert _positive(ev[key]), (key, ev)
    assert ev["backend"] in ("torch", "onnxruntime") and ev["precision"] in ("fp32", "bf16")
    assert 0 < ev["warmup"]["frames"] < ev["frames"]  # the first sequence only
    scores = ev["sanity_scores"]  # the network's column of evaluate's summary
    assert math.isfinite(scores["plcc"]) and 0 <= scores["smeasure"] <= 1
    assert results["targets"] == []  # the 90 s goal is for the full size


def test_cli_sections_and_data_root(tmp_path: Path):
    assert parse_args([]).sections == ["model", "loader", "e2e", "evaluate", "metrics"]
    assert parse_args(["e2e", "model"]).sections == ["model", "e2e"]
    with pytest.raises(SystemExit):
        parse_args(["speed"])
    with pytest.raises(SystemExit):  # a data root that is not a DAVIS copy is refused before any work
        parse_args(["loader", "--davis-root", str(tmp_path)])


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_fusion3d_forward_encodes_each_frame_once(backend):
    net = load_model("fusion3d", [64, 64])
    assert model_config("fusion3d")["pretrained"] == "none"
    calls = []
    runner = NetworkSaliency(net, device="cpu", precision="fp32", backend=backend)
    encode = runner.compute.encode_frames
    runner.compute.encode_frames = lambda frames: calls.append(len(frames)) or encode(frames)
    forward = inference_forward(runner, batch=4, calls=3)
    for _ in range(3):
        forward()
    assert calls == [5, 4, 4]  # frames 0-4, then only the 4 new frames of each later batch


def test_train_rows_use_the_modules_step(monkeypatch):
    from salvid.training.module import SaliencyModule

    steps = []
    shared_step = SaliencyModule._shared_step
    monkeypatch.setattr(SaliencyModule, "_shared_step", lambda self, batch: steps.append(1) or shared_step(self, batch))
    rows = model_rates("tiny", [64, 64], "train", batch=2, repeats=1, device="cpu", only=["fp32"])
    assert len(rows) == 2 and steps  # contiguous and channels_last, each through SaliencyModule._shared_step


def test_jpeg_copy_and_frame_folder(tmp_path: Path):
    videos = data.synthetic_videos(tmp_path, num_videos=2, num_frames=4, size=(64, 96))
    jpeg = data.jpeg_copy(videos, tmp_path / "jpeg")
    assert jpeg.resolution == "64p"
    folder = data.frame_folder(jpeg, 11, (48, 80), tmp_path / "frames")  # 8 frames: cycles, resized
    source = ImageFolder.from_directory(folder)
    assert len(source) == 11 and source.size == (48, 80)
    assert np.array_equal(source.read([0])[0], source.read([8])[0])


def test_davis_copy_holds_exactly_the_frames_asked_for(tmp_path: Path):
    from salvid.data.layouts.davis import davis2016

    videos = data.synthetic_videos(tmp_path, num_videos=2, num_frames=4, size=(64, 96))
    copy = data.davis_copy(data.jpeg_copy(videos, tmp_path / "jpeg"), 11, (48, 80), 3, tmp_path / "copy")
    sequences = davis2016(copy.root, "val", copy.resolution)  # as evaluate reads it with data.split=val
    assert copy.resolution == "48p" and [len(s.annotated_frames) for s in sequences] == [4, 4, 3]
    assert ImageFolder(list(sequences[0].frames)).size == (48, 80) and sequences[2].salient_mask(2).shape == (48, 80)


def test_davis_root_resolution(davis_root: Path):
    assert data.davis_data(davis_root).resolution == "240p"


def test_targets_report_the_speed_goals():
    run = {"fps": 31.0, "bare_fps": 33.0, "e2e_over_bare": 1.1, "peak_rss_mb": 500.0}
    results = {"e2e": {"video": "854x480", "outputs": "PNG maps", "rss_growth_2x": 1.0, "rss_model": "fusion3d",
                       "models": {"fusion3d": {"family": "fusion3d", "encodes_frames": True, "1x": run},
                                  "salvid-small-davis": {"family": "paper", "encodes_frames": False,
                                                         "1x": {**run, "e2e_over_bare": 2.0}}}}}
    results["evaluate"] = {"model": "salvid-fusion3d-davis", "frames": 1376, "video": "854x480", "seconds": 95.0}
    met = {t["target"]: t["met"] for t in report.targets(results)}
    assert met == {"fusion3d predict >= 30 frames/s (854x480, PNG maps)": True,
                   "fusion3d predict within 1.2x of its bare forward": True,
                   "salvid-small-davis predict within 1.2x of its bare forward": False,
                   "fusion3d predict peak RSS flat in video length (2x frames / 1x)": True,
                   "evaluate salvid-fusion3d-davis on 1376 frames at 854x480 (network only) <= 90 s": False}


def test_bench_evaluate_run_leaves_evaluate_as_it_found_it(tmp_path: Path):
    """The run wraps evaluate's method builder to see the network it built; left wrapped, a second run in the same
    process would score the first run's network again beside its own (and each later run one more)."""
    from salvid.bench.evaluate import evaluate_run
    from salvid.inference import scoring

    builder = scoring.build_methods
    with pytest.raises(Exception, match="davis"):  # fails after building its methods: the folder holds no DAVIS copy
        evaluate_run(str(tmp_path / "davis"), "240p", str(tmp_path / "out"), "cpu")
    assert scoring.build_methods is builder
