"""How fast salvid runs here: ``python -m salvid.bench [model|loader|e2e|metrics|all] [--quick] [--json OUT]``.

Prints one table and writes the numbers as JSON. Sections:

- **peak**: fp32 and bf16 matmul GFLOP/s, the yardstick for the model's achieved fraction;
- **model**: forward frames/s (one map per frame) and train-step samples/s for each model config, fp32 vs
  bf16 autocast, NCDHW vs channels_last_3d, eager vs ``torch.compile`` (``--compile``), FLOPs per frame from
  ``torch.utils.flop_counter``; on CPU also what the oneDNN ISA cap (see ``salvid.runtime``) costs inference;
- **loader**: samples/s the DataModule delivers from decord videos and JPEG folders with 0 and N workers,
  against the train step's consumption;
- **e2e**: predicting a 480p video to PNG maps: frames/s, ratio to the bare forward, peak RSS at 1x and 2x
  the frames;
- **metrics**: :func:`salvid.bench_metrics.run` (salvid's metric set against sklearn + pysodmetrics).

Every rate is the best of a few repeats: on a shared machine the minimum time is the least disturbed one.
Model, e2e and ISA measurements each run in a fresh child process, so one measurement's memory, threads and
oneDNN settings do not leak into the next.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import salvid  # noqa: F401  (sets process environment before torch loads)
from salvid.runtime import CONF_DIR, CPU_ISA_CAP, ISA_ENV

SECTIONS = ("model", "loader", "e2e", "metrics")
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- shared helpers


def best_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1, sync: Callable[[], None] = lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def _sync(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def bf16_supported(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def model_config(name: str) -> dict[str, Any]:
    """The network arguments of ``conf/model/<name>.yaml``, composed by Hydra as training does."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "defaults list is missing _self_" of the model group
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose(config_name=f"model/{name}")
    return OmegaConf.to_container(cfg.model, resolve=True)


def run_child(function: str, kwargs: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """``function(**kwargs)`` of this module in a fresh interpreter; its JSON result."""
    code = ("import json, sys; from salvid import bench; "
            "print(json.dumps(getattr(bench, sys.argv[1])(**json.loads(sys.argv[2]))))")
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code, function, json.dumps(kwargs)], env=child_env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise RuntimeError(f"bench child {function}({kwargs}) failed ({how}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine(device: str) -> dict[str, Any]:
    import torch

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": device}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ---------------------------------------------------------------- peak


def matmul_gflops(device: str, dtype: str, n: int, repeats: int) -> float:
    import torch

    a = torch.randn(n, n, device=device).to(getattr(torch, dtype))
    b = torch.randn(n, n, device=device).to(getattr(torch, dtype))
    seconds = best_seconds(lambda: a @ b, repeats, sync=_sync(device))
    return 2 * n**3 / seconds / 1e9


def bench_peak(device: str, quick: bool) -> dict[str, float]:
    n = 512 if quick else (8192 if device.startswith("cuda") else 2048)
    repeats = 2 if quick else 5
    peak = {"float32": matmul_gflops(device, "float32", n, repeats)}
    if bf16_supported(device):
        peak["bfloat16"] = matmul_gflops(device, "bfloat16", n, repeats)
    return peak


# ---------------------------------------------------------------- model


def flops_per_sample(config: dict[str, Any], train: bool) -> float:
    """FLOPs of one forward (or forward + backward) on one triplet, counted on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from salvid.models import SaliencyNet3D

    with torch.device("meta"):
        net = SaliencyNet3D(**config)
        x = torch.empty(1, 3, config["in_frames"], *config["input_size"])
    with FlopCounterMode(display=False) as counter:
        y = net(x)
        if train:
            y.mean().backward()
    return float(counter.get_total_flops())


def _variants(device: str, compile_: bool, fast: tuple[str, str]) -> list[tuple[str, str, bool]]:
    precisions = ["float32", "bfloat16"] if bf16_supported(device) else ["float32"]
    rows = [(p, layout, False) for p in precisions for layout in ("ncdhw", "channels_last_3d")]
    if compile_:  # compiling costs 20-45 s per variant: only the default fast path
        rows.append((*fast, True))
    return rows


def _prepare(net, x, layout: str):
    import torch

    if layout == "channels_last_3d":
        return net.to(memory_format=torch.channels_last_3d), x.contiguous(memory_format=torch.channels_last_3d)
    return net.to(memory_format=torch.contiguous_format), x.contiguous()


def _step(net, model, x, target, mode: str, device: str, precision: str) -> Callable[[], None]:
    """One forward under inference_mode (``mode="forward"``) or one train step: forward, MSE, backward, Adam."""
    import torch

    from salvid.losses import mse

    def autocast():
        return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bfloat16")

    if mode == "forward":
        net.eval()

        def forward():
            with torch.inference_mode(), autocast():
                model(x)

        return forward
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            pred = model(x)
        mse(None, pred.float(), target).backward()
        optimizer.step()

    return train_step


def model_rates(config: dict[str, Any], mode: str, batch: int, repeats: int, device: str,
                compile_: bool = False) -> list[dict[str, Any]]:
    """Rows of ``{precision, layout, compiled, rate}``: frames/s of forward (``mode="forward"``) or samples/s
    of a full train step (forward, MSE, backward, Adam)."""
    import torch

    from salvid.models import SaliencyNet3D

    torch.manual_seed(0)
    x0 = torch.randn(batch, 3, config["in_frames"], *config["input_size"], device=device)
    target = torch.rand(batch, 1, *config["input_size"], device=device).round()
    fast = ("bfloat16" if bf16_supported(device) else "float32", "channels_last_3d")
    rows = []
    for precision, layout, compiled in _variants(device, compile_, fast):
        net, x = _prepare(SaliencyNet3D(**config).to(device), x0, layout)
        step = _step(net, torch.compile(net) if compiled else net, x, target, mode, device, precision)
        start = time.perf_counter()
        step()  # first call: compiles, picks oneDNN kernels
        first = time.perf_counter() - start
        seconds = best_seconds(step, repeats, warmup=1 if compiled else 0, sync=_sync(device))
        rows.append({"precision": precision, "layout": layout, "compiled": compiled,
                     "rate": batch / seconds, "first_call_s": first})
    return rows


def isa_probe(config: dict[str, Any], batch: int, repeats: int, matmul_n: int) -> dict[str, Any]:
    """bf16 matmul GFLOP/s and bf16 forward frames/s under whatever ONEDNN_MAX_CPU_ISA this process got."""
    import torch

    out = {"isa": os.environ.get(ISA_ENV, "default"), "bf16_matmul_gflops": matmul_gflops("cpu", "bfloat16",
                                                                                         matmul_n, repeats)}
    rows = model_rates(config, "forward", batch, repeats, "cpu")
    for row in rows:
        if row["precision"] == "bfloat16":
            out[f"bf16_forward_{row['layout']}"] = row["rate"]
    out["torch_threads"] = torch.get_num_threads()
    return out


def bench_isa_cap(quick: bool) -> dict[str, Any]:
    """What capping oneDNN at AVX512_CORE_BF16 (no AMX) costs bf16 inference: the same probe with the cap and
    without, alternated so that load changes on a shared machine hit both sides."""
    name = "tiny" if quick else "paper"
    kwargs = {"config": model_config(name), "batch": 2 if quick else 4, "repeats": 1 if quick else 2,
              "matmul_n": 512 if quick else 2048}
    results: dict[str, list[dict]] = {"capped": [], "uncapped": []}
    for _ in range(1 if quick else 2):
        results["uncapped"].append(run_child("isa_probe", kwargs, {ISA_ENV: "ALL"}))
        results["capped"].append(run_child("isa_probe", kwargs, {ISA_ENV: CPU_ISA_CAP}))
    best = {side: {k: max(r[k] for r in rs) for k in rs[0] if k.startswith("bf16")} for side, rs in results.items()}
    return {"model": name, "cap": CPU_ISA_CAP, **best,
            "uncapped_over_capped": {k: best["uncapped"][k] / best["capped"][k] for k in best["capped"]}}


def bench_model(device: str, quick: bool, compile_: bool, peak: dict[str, float]) -> dict[str, Any]:
    names = ["tiny"] if quick else ["paper", "small"]
    batch = 2 if quick else (4 if device == "cpu" else 32)
    repeats = 1 if quick else 2
    out: dict[str, Any] = {"batch": batch, "models": {}}
    for name in names:
        config = model_config(name)
        config["input_size"] = [64, 64] if quick else [224, 224]
        fwd_flops = flops_per_sample(config, train=False)
        train_flops = flops_per_sample(config, train=True)
        kwargs = {"config": config, "batch": batch, "repeats": repeats, "device": device, "compile_": compile_}
        forward = run_child("model_rates", {**kwargs, "mode": "forward"}, inference_env())
        train = run_child("model_rates", {**kwargs, "mode": "train"}, training_env())
        for rows, flops in ((forward, fwd_flops), (train, train_flops)):
            for row in rows:
                row["gflops"] = row["rate"] * flops / 1e9
                row["fraction_of_peak"] = row["gflops"] / peak[row["precision"]]
        out["models"][name] = {"input_size": config["input_size"], "gflop_per_frame": fwd_flops / 1e9,
                               "gflop_per_train_sample": train_flops / 1e9, "forward": forward, "train": train}
    if device == "cpu" and bf16_supported(device):
        out["isa_cap"] = bench_isa_cap(quick)
    return out


def inference_env() -> dict[str, str]:
    """Inference processes run with this process's oneDNN settings (salvid caps only training)."""
    return {}


def training_env() -> dict[str, str]:
    """What ``salvid.runtime.cap_cpu_isa_for_training`` gives a training process."""
    return {ISA_ENV: os.environ.get(ISA_ENV, CPU_ISA_CAP)}


# ---------------------------------------------------------------- loader


def _jpeg_sequences(quick: bool, video_root: Path, scratch: Path) -> tuple[str, list]:
    """DAVIS-2016 240p from the shared data when present, else a JPEG copy of the synthetic videos."""
    from PIL import Image

    from salvid.data.layouts import Sequence, video_folder

    davis = Path(os.environ.get("SALVID_SHARED_DATA", "/work/shared/data")) / "DAVIS-2016-train-240p"
    count = 2 if quick else 4
    if (davis / "JPEGImages").is_dir():
        frame_root = next((davis / "JPEGImages").iterdir())
        mask_root = davis / "Annotations" / frame_root.name
        seqs = []
        for seq_dir in sorted(p for p in frame_root.iterdir() if p.is_dir())[:count]:
            frames = tuple(sorted(seq_dir.glob("*.jpg")))
            seqs.append(Sequence(seq_dir.name, frames, tuple(mask_root / seq_dir.name / f"{f.stem}.png"
                                                            for f in frames)))
        return f"DAVIS-2016 {frame_root.name} JPEG", seqs
    seqs = []
    for seq in video_folder(video_root, "train")[:count]:
        folder = scratch / "jpeg" / seq.name
        folder.mkdir(parents=True, exist_ok=True)
        source = seq.open()
        paths = []
        for i, frame in enumerate(source.read(range(len(source)))):
            paths.append(folder / f"{i:05d}.jpg")
            Image.fromarray(frame).save(paths[-1], quality=90)
        seqs.append(Sequence(seq.name, tuple(paths), seq.masks))
    return "synthetic JPEG copy", seqs


def loader_rate(datamodule, samples: int) -> float:
    """Samples/s delivered after the first batch (worker start-up excluded), uint8->float step included."""
    delivered, start = 0, None
    while delivered < samples:
        for batch in datamodule.train_dataloader():
            datamodule.on_after_batch_transfer(batch, 0)
            if start is None:
                start = time.perf_counter()
                continue
            delivered += len(batch["mask"])
            if delivered >= samples:
                break
    return delivered / (time.perf_counter() - start)


def bench_loader(quick: bool, scratch: Path, input_size: tuple[int, int]) -> dict[str, Any]:
    from salvid.data.datamodule import SaliencyDataModule
    from salvid.data.synthetic import generate_dataset

    frames = 16 if quick else 48
    video_root = generate_dataset(scratch / "videos", num_videos={"train": 2 if quick else 4, "val": 0, "test": 0},
                                  num_frames=frames, size=(240, 428))
    jpeg_name, jpeg_seqs = _jpeg_sequences(quick, video_root, scratch)
    samples = 24 if quick else 192
    workers = [0, max(2, min(4, os.cpu_count() or 2))]
    rows = []
    for source in ("decord video", jpeg_name):
        for n in workers:
            dm = SaliencyDataModule("videos", str(video_root), {"train": "train", "val": None, "test": None},
                                    input_size=input_size, batch_size=8, num_workers=n)
            dm.setup("fit")
            if source != "decord video":
                dm.sequences["train"] = jpeg_seqs  # same pipeline, frames from image folders
            rows.append({"source": source, "workers": n, "samples_per_s": loader_rate(dm, samples)})
    return {"input_size": list(input_size), "batch_size": 8, "rows": rows}


# ---------------------------------------------------------------- end to end


def write_test_video(path: Path, num_frames: int, size: tuple[int, int]) -> Path:
    """A synthetic 480p clip of ``num_frames``, looping a short rendered sequence (bounded memory)."""
    import av

    from salvid.data.synthetic import render_sequence

    frames, _ = render_sequence(0, min(num_frames, 48), size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "23", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        for i in range(num_frames):
            k = i % (2 * len(frames) - 2) if len(frames) > 1 else 0  # ping-pong keeps the motion continuous
            frame = frames[k if k < len(frames) else 2 * len(frames) - 2 - k]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def e2e_predict(config: dict[str, Any], video: str, out_dir: str, batch: int, bare_batches: int) -> dict[str, Any]:
    """``salvid.predict`` on ``video`` (PNG maps, map and overlay videos) with the default inference settings;
    time it, the bare forward of the same runner, and the peak RSS."""
    import torch
    from omegaconf import OmegaConf

    from salvid.inference import NetworkSaliency
    from salvid.io import OutputGuard
    from salvid.models import SaliencyNet3D
    from salvid.predict import predict_one, resolve_inputs

    torch.manual_seed(0)
    runner = NetworkSaliency(SaliencyNet3D(**config), device="cpu")
    x = torch.randn(batch, 3, config["in_frames"], *config["input_size"]).contiguous(
        memory_format=runner.memory_format)

    def forward():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=runner.dtype is not None):
            return runner.net(x)

    forward()  # oneDNN picks its kernels on the first call: a one-off cost, excluded on both sides
    item = resolve_inputs(video)[0]
    cfg = OmegaConf.create({"fps": 25, "batch_size": batch, "write_pngs": True, "write_videos": True,
                            "overlay_alpha": 0.5})
    start = time.perf_counter()
    frames = predict_one(runner, item, OutputGuard(out_dir, input_files=[video]), cfg)
    seconds = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {"frames": frames, "seconds": seconds, "fps": frames / seconds, "peak_rss_mb": peak_rss_mb}
    if bare_batches:
        per_batch = best_seconds(forward, bare_batches, warmup=1)
        result["bare_fps"] = batch / per_batch
        result["e2e_over_bare"] = result["bare_fps"] / result["fps"]
    return result


def bench_e2e(quick: bool, scratch: Path) -> dict[str, Any]:
    name = "tiny" if quick else "small"
    config = model_config(name)
    frames = 24 if quick else 304  # whole batches of 8: a smaller last batch would add a kernel set-up
    size = (240, 428) if quick else (480, 854)
    runs = {}
    for factor in (1, 2):
        video = write_test_video(scratch / f"e2e_{factor}x.mp4", frames * factor, size)
        runs[f"{factor}x"] = run_child("e2e_predict", {
            "config": config, "video": str(video), "out_dir": str(scratch / f"maps_{factor}x"), "batch": 8,
            "bare_batches": 3 if factor == 1 else 0}, inference_env())
    return {"model": name, "video": f"{size[1]}x{size[0]}", **runs,
            "rss_growth_2x": runs["2x"]["peak_rss_mb"] / runs["1x"]["peak_rss_mb"]}


# ---------------------------------------------------------------- metrics


def bench_metrics(quick: bool, device: str) -> dict[str, Any]:
    try:
        from salvid.bench_metrics import run
    except ImportError as error:
        raise RuntimeError(f"salvid.bench_metrics is not importable ({error}); it comes with the metrics "
                           "issue's work") from error
    return run(16 if quick else 64, (120, 214) if quick else (480, 854), device)


# ---------------------------------------------------------------- report


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets beside the measured figures (reported, never asserted)."""
    out = []
    models = results.get("model", {}).get("models", {})
    paper = models.get("paper") or next(iter(models.values()), None)
    if paper:
        fast = max((r for r in paper["forward"] if not r["compiled"]), key=lambda r: r["rate"])
        out.append({"target": f"{'paper' if 'paper' in models else 'model'} inference >= 50% of peak "
                    f"({fast['precision']}, {fast['layout']})", "measured": fast["fraction_of_peak"],
                    "goal": 0.5, "met": fast["fraction_of_peak"] >= 0.5})
        if "loader" in results:
            slowest = min(r["samples_per_s"] for r in results["loader"]["rows"] if r["workers"] > 0)
            fastest_train = max(max(r["rate"] for r in m["train"]) for m in models.values())
            ratio = slowest / fastest_train
            results["loader"]["vs_fastest_train_step"] = ratio
            out.append({"target": "loader (N workers, slowest source) >= 3x fastest train step", "measured": ratio,
                        "goal": 3.0, "met": ratio >= 3.0})
    if "e2e" in results:
        e2e = results["e2e"]
        out.append({"target": "predict within 1.3x of bare forward", "measured": e2e["1x"]["e2e_over_bare"],
                    "goal": 1.3, "met": e2e["1x"]["e2e_over_bare"] <= 1.3})
        out.append({"target": "peak RSS flat in video length (2x frames / 1x)", "measured": e2e["rss_growth_2x"],
                    "goal": 1.1, "met": e2e["rss_growth_2x"] <= 1.1})
    return out


def table(results: dict[str, Any]):
    from rich.table import Table

    m = results["machine"]
    t = Table(title=f"salvid bench: {m['cpu']}, {m['cores']} cores, {m.get('gpu', 'no GPU')}, torch {m['torch']}")
    for col, justify in (("section", "left"), ("case", "left"), ("value", "right"), ("unit", "left"),
                         ("note", "left")):
        t.add_column(col, justify=justify)
    for precision, g in results["peak"].items():
        t.add_row("peak", f"matmul {precision}", f"{g:.0f}", "GFLOP/s", "")
    for name, model in results.get("model", {}).get("models", {}).items():
        t.add_row("model", f"{name} {model['input_size'][0]}x{model['input_size'][1]} FLOPs",
                  f"{model['gflop_per_frame']:.2f}", "GFLOP/frame", f"train {model['gflop_per_train_sample']:.1f}")
        for kind, unit in (("forward", "frames/s"), ("train", "samples/s")):
            for r in model[kind]:
                case = f"{name} {kind} {r['precision']} {r['layout']}{' compiled' if r['compiled'] else ''}"
                t.add_row("model", case, f"{r['rate']:.2f}", unit,
                          f"{100 * r['fraction_of_peak']:.0f}% of peak, first call {r['first_call_s']:.1f}s")
    cap = results.get("model", {}).get("isa_cap")
    if cap:
        for key, ratio in cap["uncapped_over_capped"].items():
            t.add_row("isa cap", f"{cap['model']} {key}", f"{ratio:.2f}", "x uncapped/capped",
                      f"{cap['uncapped'][key]:.1f} vs {cap['capped'][key]:.1f}")
    for r in results.get("loader", {}).get("rows", []):
        t.add_row("loader", f"{r['source']}, {r['workers']} workers", f"{r['samples_per_s']:.1f}", "samples/s", "")
    if "e2e" in results:
        e = results["e2e"]
        for k in ("1x", "2x"):
            note = f"bare forward {e[k]['bare_fps']:.1f} frames/s" if "bare_fps" in e[k] else ""
            t.add_row("e2e", f"{e['model']} {e['video']} {e[k]['frames']} frames", f"{e[k]['fps']:.2f}",
                      "frames/s", note)
            t.add_row("e2e", f"peak RSS, {e[k]['frames']} frames", f"{e[k]['peak_rss_mb']:.0f}", "MB", "")
    if "metrics" in results:
        r = results["metrics"]
        if "error" in r:
            t.add_row("metrics", "unavailable", "", "", r["error"])
        else:
            t.add_row("metrics", "salvid SaliencyMetrics", f"{r['salvid_fps']:.1f}", "frames/s",
                      f"{r['size'][1]}x{r['size'][0]}")
            t.add_row("metrics", "sklearn + pysodmetrics", f"{r['reference_fps']:.1f}", "frames/s",
                      f"max |diff| {r['max_abs_difference']:.1e}")
    for tg in results.get("targets", []):
        t.add_row("target", tg["target"], f"{tg['measured']:.2f}", f"goal {tg['goal']}",
                  "met" if tg["met"] else "NOT met")
    return t


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch
    from rich.console import Console

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", nargs="?", default="all", choices=[*SECTIONS, "all"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and single repeats (tests, smoke runs)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (20-45 s of compile each)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write the results")
    args = parser.parse_args(argv)
    sections = SECTIONS if args.section == "all" else (args.section,)

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(args.device), "quick": args.quick, "sections": list(sections)}
    results["peak"] = bench_peak(args.device, args.quick)
    with tempfile.TemporaryDirectory(prefix="salvid-bench-") as scratch:
        scratch = Path(scratch)
        if "model" in sections or "loader" in sections:
            results["model"] = bench_model(args.device, args.quick, args.compile, results["peak"])
        if "loader" in sections:
            size = (128, 128) if args.quick else (224, 224)
            results["loader"] = bench_loader(args.quick, scratch, size)
        if "e2e" in sections:
            results["e2e"] = bench_e2e(args.quick, scratch)
        if "metrics" in sections:
            try:
                results["metrics"] = bench_metrics(args.quick, args.device)
            except RuntimeError as error:
                if args.section == "metrics":
                    raise SystemExit(str(error)) from error
                results["metrics"] = {"error": str(error)}
    results["targets"] = targets(results)
    results["seconds"] = time.perf_counter() - started
    from salvid.io import atomic_write_json

    atomic_write_json(args.json, results)
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(table(results))
    console.print(f"{results['seconds']:.0f} s; results: {args.json}")
    return results


if __name__ == "__main__":
    main()
