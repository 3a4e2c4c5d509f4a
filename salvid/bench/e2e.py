"""``predict`` end to end: a folder of 854x480 JPEG frames to PNG maps, timed through ``predict``'s own per-input
function (:func:`salvid.inference.predicting.predict_one`) with ``predict``'s default settings (``conf/predict.yaml``).

Each model runs per backend and precision (``torch`` in fp32 and, where the hardware has bf16, bf16;
``onnxruntime`` in fp32 where it runs), each in a fresh process, and reports frames/s, its bare forward (the
same runner on the same frames, already decoded and at the network's input size, held in memory: the network
alone, with the per-frame feature reuse ``predict`` gets, over as many batches; timed once before and once
after ``predict``, total frames over total time, so a change of load during the run weighs on both sides
alike), their ratio, ``predict``'s peak RSS (counted from just before it, so without the bench's in-memory
frames), and where the time went: ``decode`` (reading frames), ``resize`` (frames to the input size),
``forward`` (the network), ``upsample`` (maps back to 854x480) and ``write`` (PNG encoding and writing), as
``predict`` records them in its ``status.json``; ``predict`` runs some of them side by side, so they overlap.
``auto`` names the setting ``predict`` picks by itself here. The first model also predicts twice the frames
(with the setting ``predict`` picks), to show whether memory grows with the video's length.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from salvid.bench.common import (
    backends,
    family,
    load_model,
    model_config,
    peak_rss_mb,
    precisions,
    reset_peak_rss,
    run_child,
)
from salvid.data.sources import FrameSource
from salvid.runtime.files import OutputGuard


def predict_rate(model: str, frames: str, out_dir: str, device: str, bare: bool,
                 input_size: list[int] | None = None, write_videos: bool = False, backend: str = "auto",
                 precision: str = "auto") -> dict[str, Any]:
    """``predict_one`` on the frame folder ``frames`` (PNG maps; the map and overlay videos too with
    ``write_videos``) with ``backend`` and ``precision``; with ``bare``, the same runner's bare forward over the
    same frames before and after it."""
    from salvid.bench.common import compose
    from salvid.inference.core import NetworkSaliency
    from salvid.inference.predicting import predict_one, resolve_inputs

    cfg = compose("predict", [f"write_videos={str(write_videos).lower()}", f"backend={backend}",
                              f"precision={precision}"])
    runner = NetworkSaliency(load_model(model, input_size), device=device, precision=cfg.precision,
                             channels_last=cfg.channels_last, backend=cfg.backend,
                             model_config=model_config(model, input_size))
    item = resolve_inputs(frames)[0]
    # oneDNN / cuDNN pick their kernels on the first call: a one-off cost, kept out of both sides
    _stream_rate(runner, _resized_frames(item.source, runner.input_size, count=2 * cfg.batch_size + 1),
                 cfg.batch_size)
    # decoded again after predict rather than held: held, the copy would count in predict's peak RSS
    bare_runs = [_stream_rate(runner, _resized_frames(item.source, runner.input_size), cfg.batch_size)] if bare else []
    gc.collect()
    reset_peak_rss()  # predict's peak, without the bench's in-memory frames
    guard = OutputGuard(out_dir, input_dirs=[frames])
    start = time.perf_counter()
    written = predict_one(runner, item, guard, cfg)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    stages = json.loads(guard.path(item.name, "status.json").read_text(encoding="utf-8"))["stage_seconds"]
    result = {"frames": written, "seconds": seconds, "fps": written / seconds, "peak_rss_mb": peak,
              "batch_size": cfg.batch_size, "backend": runner.backend, "precision": runner.precision,
              "channels_last": bool(runner.net.channels_last), "stages_s": stages}
    if bare:
        bare_runs.append(_stream_rate(runner, _resized_frames(item.source, runner.input_size), cfg.batch_size))
        result["bare_fps_before_after"] = [n / s for n, s in bare_runs]
        # total frames over total time: both passes weigh by their time, as the e2e rate does
        result["bare_fps"] = sum(n for n, _ in bare_runs) / sum(s for _, s in bare_runs)
        result["e2e_over_bare"] = result["bare_fps"] / result["fps"]
    return result


class _InMemory(FrameSource):
    """Frames held as one array: a stream without decoding."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self.path = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[1:3]

    def _decode(self, indices: np.ndarray) -> np.ndarray:
        return self.frames[indices]


def _resized_frames(source: FrameSource, size: tuple[int, int], count: int | None = None,
                    chunk: int = 32) -> _InMemory:
    """The first ``count`` (default all) frames of ``source`` at ``size``, decoded into memory ``chunk`` at a
    time (only the resized frames are held)."""
    from salvid.data.preprocess import resize_frame

    n = min(count or len(source), len(source))
    resized = [resize_frame(f, size) for start in range(0, n, chunk)
               for f in source.read(list(range(start, min(start + chunk, n))))]
    return _InMemory(np.stack(resized))


def _stream_rate(runner, source: FrameSource, batch_size: int) -> tuple[int, float]:
    """(frames, seconds) of ``runner`` over all of ``source`` in batches of ``batch_size``, as ``predict`` streams
    them (features of shared frames reused), with nothing decoded, resized or written."""
    start = time.perf_counter()
    count = sum(1 for _ in runner.stream(source, batch_size))
    return count, time.perf_counter() - start


def settings(device: str) -> list[tuple[str, str]]:
    """``(backend, precision)`` pairs to run: every precision of torch, then fp32 of the other backends."""
    return [("torch", p) for p in precisions(device)] + [(b, "fp32") for b in backends(device) if b != "torch"]


def bench_e2e(models: list[str], frames: dict[str, Path], size: tuple[int, int], scratch: Path, device: str,
              input_size: list[int] | None = None, write_videos: bool = False) -> dict[str, Any]:
    """Rows per model, backend and precision on the ``"1x"`` frame folder of ``frames``; the first model also on
    ``"2x"`` (with what ``predict`` picks by itself)."""
    out: dict[str, Any] = {"video": f"{size[1]}x{size[0]}", "outputs": "PNG maps" + (" + videos" if write_videos
                                                                                      else ""), "models": {}}
    for i, spec in enumerate(models):
        config = model_config(spec, input_size)
        runs = {}
        cases = [("1x", b, p) for b, p in [("auto", "auto"), *settings(device)]]
        cases += [("2x", "auto", "auto")] if i == 0 else []
        for factor, backend, precision in cases:
            name = factor if backend == "auto" else f"{factor} {backend} {precision}"
            runs[name] = run_child("salvid.bench.e2e:predict_rate", {
                "model": spec, "frames": str(frames[factor]), "out_dir": str(scratch / f"maps_{i}_{len(runs)}"),
                "device": device, "bare": factor == "1x", "input_size": input_size,
                "write_videos": write_videos, "backend": backend, "precision": precision})
        out["models"][spec] = {**family(config), "input_size": config["input_size"], **runs}
        if "2x" in runs:
            out["rss_growth_2x"] = runs["2x"]["peak_rss_mb"] / runs["1x"]["peak_rss_mb"]
            out["rss_model"] = spec
    return out
