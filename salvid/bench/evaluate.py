"""``evaluate`` of one network on a DAVIS-2016-shaped copy (by default 1,376 frames at 854x480 in 20 sequences, as
DAVIS-2016 val), network only (no baselines), timed through ``evaluate``'s own function
(:func:`salvid.inference.scoring.evaluate`) with ``evaluate``'s default settings (``conf/evaluate.yaml``):
reading frames and masks, the network, scoring, and writing the tables and figures.

It reports frames, seconds (wall, model loading included), frames/s, the backend and precision ``evaluate``
picked, and the peak RSS. ``evaluate`` records no per-stage seconds, so there is no breakdown. The scores are
a sanity check that the maps were made and scored, not an accuracy: the frames are resized (or synthetic) and
the network may have random weights.

A first ``evaluate`` of a network on a machine measures the backends (``backend=auto``) and exports its ONNX
graphs, once, into the cache: a warm-up run on the first sequence, in its own process, does that before the
timed run, which then costs what every later ``evaluate`` costs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from salvid.bench.common import is_model_config, load_model, model_config, peak_rss_mb, run_child
from salvid.bench.data import JpegData


def evaluate_run(data_root: str, resolution: str, out_dir: str, device: str, ckpt_path: str | None = None,
                 sequences: list[str] | None = None) -> dict[str, Any]:
    """``evaluate`` of ``ckpt_path`` (null: the default model) on the ``val`` split of the DAVIS-2016-layout copy
    ``data_root``, without baselines, into ``out_dir``; ``sequences``: only these."""
    from salvid.bench.common import compose
    from salvid.inference import scoring
    from salvid.runtime import progress
    from salvid.runtime.schema import EvaluateConfig, validate

    overrides = ["data=davis2016", f"data.root={data_root}", f"data.resolution={resolution}", "data.split=val",
                 "baselines=[]", f"paths.output_dir={out_dir}", f"device={device}",
                 f"ckpt_path={ckpt_path if ckpt_path is not None else 'null'}"]
    if sequences is not None:
        overrides.append(f"data.sequences=[{','.join(sequences)}]")
    cfg = compose("evaluate", overrides)
    validate(EvaluateConfig, cfg)  # the entry point's check (bench modules import no entry point)
    progress.quiet()  # as the entry point runs it
    built = []  # the methods evaluate builds, kept to report which backend and precision its network ran
    build_methods = scoring.build_methods
    scoring.build_methods = lambda c: built.extend(build_methods(c)) or built
    try:
        start = time.perf_counter()
        summary = scoring.evaluate(cfg)
        seconds = time.perf_counter() - start
    finally:  # a second run in this process must not score this run's methods again
        scoring.build_methods = build_methods
    network = built[0]
    scored = int(sum(len(s.annotated_frames) for s in scoring.load_sequences(cfg)))
    return {"frames": scored, "seconds": seconds, "fps": scored / seconds, "peak_rss_mb": peak_rss_mb(),
            "method": network.name, "backend": network.backend, "precision": network.precision,
            "batch_size": int(cfg.batch_size), "sanity_scores": summary[network.name]}  # not an accuracy


def network_file(spec: str, config: dict[str, Any], input_size: list[int] | None, scratch: Path) -> str | None:
    """What ``evaluate`` loads for ``spec``: null for the default model at its own input size (``evaluate``'s own
    default), a pretrained name or file as given, else the network with random weights saved under ``scratch``
    (a model config, or a pretrained model at another ``input_size``, as quick runs use); ``config``: its model
    config at that size."""
    from salvid.checkpoints import DEFAULT_PRETRAINED, save_pretrained

    if not is_model_config(spec) and input_size is None:
        return None if spec == DEFAULT_PRETRAINED else spec
    path = scratch / "evaluate_model" / f"{Path(spec).stem}.safetensors"  # its stem names the network's column
    save_pretrained(load_model(spec, input_size), config, path, {"note": "salvid.bench: random weights"})
    return str(path)


def bench_evaluate(model: str, data: JpegData, scratch: Path, device: str, input_size: list[int] | None = None
                   ) -> dict[str, Any]:
    """The warm-up run on the first sequence of ``data`` (a :class:`salvid.bench.data.JpegData` written by
    :func:`salvid.bench.data.davis_copy`), then the timed run on all of it, each in a fresh process."""
    from salvid.data.layouts.davis import davis2016

    config = model_config(model, input_size)
    ckpt = network_file(model, config, input_size, scratch)
    sequences = davis2016(data.root, "val", data.resolution)
    kwargs = {"data_root": str(data.root), "resolution": data.resolution, "device": device, "ckpt_path": ckpt}
    warmup = run_child("salvid.bench.evaluate:evaluate_run", {
        **kwargs, "out_dir": str(scratch / "evaluate_warmup"), "sequences": [sequences[0].name]})
    run = run_child("salvid.bench.evaluate:evaluate_run", {**kwargs, "out_dir": str(scratch / "evaluate")})
    frame = sequences[0].open().size
    return {"model": model, "input_size": config["input_size"], "video": f"{frame[1]}x{frame[0]}",
            "sequences": len(sequences), "warmup": {k: warmup[k] for k in ("frames", "seconds")}, **run}
