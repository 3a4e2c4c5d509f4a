"""``predict`` end to end: a folder of 854x480 JPEG frames to PNG maps, timed through ``predict``'s own per-input
function (:func:`salvid.inference.predicting.predict_one`) with ``predict``'s default settings (``conf/predict.yaml``).

Each model runs in a fresh process and reports frames/s, its bare forward (the same runner on frames already
at the network's input size: the network alone, with the per-frame feature reuse ``predict`` gets, see
:func:`salvid.bench.model.inference_forward`), their ratio and the peak RSS. The first model also predicts
twice the frames, to show whether memory grows with the video's length.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from salvid.bench.common import best_seconds, family, load_model, model_config, peak_rss_mb, run_child


def predict_rate(model: str, frames: str, out_dir: str, device: str, bare_batches: int,
                 input_size: list[int] | None = None, write_videos: bool = False) -> dict[str, Any]:
    """``predict_one`` on the frame folder ``frames`` (PNG maps; the map and overlay videos too with
    ``write_videos``), then the bare forward of the same runner (best of ``bare_batches`` batches)."""
    from salvid.bench.common import compose
    from salvid.bench.model import inference_forward
    from salvid.inference.core import NetworkSaliency
    from salvid.inference.predicting import predict_one, resolve_inputs
    from salvid.runtime.files import OutputGuard

    cfg = compose("predict", [f"write_videos={str(write_videos).lower()}"])
    runner = NetworkSaliency(load_model(model, input_size), device=device, precision=cfg.precision,
                             channels_last=cfg.channels_last)
    forward = inference_forward(runner, cfg.batch_size, calls=bare_batches + 2)
    forward()  # oneDNN / cuDNN pick their kernels on the first call: a one-off cost, kept out of both sides
    item = resolve_inputs(frames)[0]
    start = time.perf_counter()
    written = predict_one(runner, item, OutputGuard(out_dir, input_dirs=[frames]), cfg)
    seconds = time.perf_counter() - start
    result = {"frames": written, "seconds": seconds, "fps": written / seconds, "peak_rss_mb": peak_rss_mb(),
              "batch_size": cfg.batch_size, "precision": "fp32" if runner.dtype is None else "bf16",
              "channels_last": bool(runner.net.channels_last)}
    if bare_batches:
        per_batch = best_seconds(forward, bare_batches, warmup=1)
        result["bare_fps"] = cfg.batch_size / per_batch
        result["e2e_over_bare"] = result["bare_fps"] / result["fps"]
    return result


def bench_e2e(models: list[str], frames: dict[str, Path], size: tuple[int, int], scratch: Path, device: str,
              input_size: list[int] | None = None, write_videos: bool = False) -> dict[str, Any]:
    """Rows per model on the ``"1x"`` frame folder of ``frames``; the first model also on ``"2x"``."""
    out: dict[str, Any] = {"video": f"{size[1]}x{size[0]}", "outputs": "PNG maps" + (" + videos" if write_videos
                                                                                      else ""), "models": {}}
    for i, spec in enumerate(models):
        config = model_config(spec, input_size)
        runs = {}
        for factor in ("1x", "2x") if i == 0 else ("1x",):
            runs[factor] = run_child("salvid.bench.e2e:predict_rate", {
                "model": spec, "frames": str(frames[factor]), "out_dir": str(scratch / f"maps_{i}_{factor}"),
                "device": device, "bare_batches": 3 if factor == "1x" else 0, "input_size": input_size,
                "write_videos": write_videos})
        out["models"][spec] = {**family(config), "input_size": config["input_size"], **runs}
        if "2x" in runs:
            out["rss_growth_2x"] = runs["2x"]["peak_rss_mb"] / runs["1x"]["peak_rss_mb"]
            out["rss_model"] = spec
    return out
