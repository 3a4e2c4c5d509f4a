"""How fast salvid runs here: ``python -m salvid.bench [SECTION ...] [options]``; prints one table, writes JSON.

Sections (default ``all``):

- ``model``: peak matmul GFLOP/s; per model, inference forward frames/s (as ``predict`` runs the network: a
  pretrained-encoder model encodes each frame once) and train-step samples/s, fp32 vs bf16 (where the hardware
  has it), contiguous vs channels_last memory, FLOPs and fraction of peak (:mod:`salvid.bench.model`);
- ``loader``: samples/s of the training DataModule from H.264 videos and JPEG folders (:mod:`salvid.bench.loader`);
- ``e2e``: ``predict`` on 854x480 JPEG frames to PNG maps: frames/s, ratio to the bare forward, peak RSS
  (:mod:`salvid.bench.e2e`);
- ``evaluate``: ``evaluate`` of the default model, network only, on 1,376 frames at 854x480 in 20 sequences (the
  size of DAVIS-2016 val): seconds, frames/s, peak RSS (:mod:`salvid.bench.evaluate`);
- ``metrics``: the full metric set against sklearn + pysodmetrics (:mod:`salvid.bench.metrics`).

Models are model config names (``conf/model/``: ``fusion3d``, ``fusion3d_fast``, ``paper``, ``small``, ``tiny``;
random weights) or pretrained models (``salvid-small-davis``, a ``.safetensors`` or ``.ckpt`` file; their own
weights), given with ``--models`` for the model and e2e sections; ``evaluate`` runs the first of them. By default
``model`` and ``e2e`` compare the pretrained-encoder model (the shipped default ``salvid-fusion3d-fast-davis-duts`` when
installed, else its config ``fusion3d_fast``) with the paper network ``salvid-small-davis``; ``model`` adds ``paper``; ``evaluate``
runs the pretrained-encoder model.

Examples::

    python -m salvid.bench all                           # every section (several minutes on a 2-core CPU)
    python -m salvid.bench model e2e --models fusion3d salvid-small-davis   # the two families side by side
    python -m salvid.bench loader --davis-root DIR      # the loader on a DAVIS copy (default: synthetic JPEGs)
    python -m salvid.bench evaluate --davis-root DIR    # evaluate on DAVIS frames resized to 854x480
    python -m salvid.bench model --quick                 # tiny sizes, one repeat: checks that it runs

Options: ``--json OUT`` (default ``bench.json``), ``--device`` (default: CUDA when available), ``--compile``
(adds a ``torch.compile`` row per model; tens of seconds each), ``--e2e-videos`` (``predict`` also writes the
map and overlay videos it writes by default; without it, PNG maps only), ``--davis-root DIR`` (a DAVIS-2016/2017 copy for the loader and the
e2e and evaluate frames, resized to 854x480 when smaller or larger). The model section's rates are the best of
a few repeats (on a shared machine the least disturbed; e2e's bare forward runs over the same frames as
predict); model, e2e, evaluate and ISA measurements each run in a fresh child process. Targets are reported,
never asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECTIONS = ("model", "loader", "e2e", "evaluate", "metrics")
PAPER_DEFAULT = "salvid-small-davis"
E2E_SIZE = (480, 854)
EVALUATE_FRAMES, EVALUATE_SEQUENCES = 1376, 20  # DAVIS-2016 val at 480p


def default_fusion_model() -> str:
    """The shipped pretrained-encoder model when this installation has it, else its model config."""
    from salvid.checkpoints import DEFAULT_PRETRAINED, PRETRAINED_DIR

    return DEFAULT_PRETRAINED if (PRETRAINED_DIR / f"{DEFAULT_PRETRAINED}.safetensors").is_file() else "fusion3d_fast"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m salvid.bench", description="How fast salvid runs here: prints one table, writes JSON.",
                                     epilog="Sections: " + ", ".join(SECTIONS) + ", all (default).")
    parser.add_argument("sections", nargs="*", default=["all"], metavar="SECTION",
                        help="model, loader, e2e, evaluate, metrics or all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and single repeats (tests, smoke runs)")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help=f"models of the model and e2e sections (default: fusion3d or its shipped model, "
                             f"{PAPER_DEFAULT}; the model section adds paper); evaluate runs the first")
    parser.add_argument("--davis-root", type=Path, metavar="DIR",
                        help="a DAVIS copy for the loader, e2e and evaluate frames (default: synthetic frames)")
    parser.add_argument("--e2e-videos", action="store_true", help="e2e: predict also writes its two videos")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (tens of seconds each)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write the results")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - {*SECTIONS, "all"})
    if unknown:
        parser.error(f"unknown section(s) {unknown}: choose from {', '.join(SECTIONS)}, all")
    args.sections = list(SECTIONS) if "all" in args.sections else [s for s in SECTIONS if s in args.sections]
    if args.davis_root is not None and not (args.davis_root / "JPEGImages").is_dir():
        parser.error(f"--davis-root {args.davis_root}: no JPEGImages folder (expected a DAVIS copy)")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from salvid.bench import data
    from salvid.bench.common import machine, model_config

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    quick = args.quick
    input_size = [64, 64] if quick else None  # quick: every model at 64x64
    fusion = default_fusion_model()
    e2e_models = args.models or (["tiny", "fusion3d"] if quick else [fusion, PAPER_DEFAULT])
    models = args.models or (e2e_models if quick else [*e2e_models, "paper"])

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(device), "quick": quick, "sections": args.sections}
    from salvid.bench.model import bench_model, bench_peak

    results["peak"] = bench_peak(device, quick)
    with tempfile.TemporaryDirectory(prefix="salvid-bench-") as tmp:
        scratch = Path(tmp)
        if "model" in args.sections:
            results["model"] = bench_model(models, device, quick, args.compile, results["peak"], input_size)
        video_root = None  # synthetic videos: the loader's video source, and the JPEGs without --davis-root
        jpeg_sections = {"e2e", "evaluate"} & set(args.sections)
        if "loader" in args.sections or (jpeg_sections and args.davis_root is None):
            video_root = data.synthetic_videos(scratch, 2 if quick else 4, 16 if quick else 48,
                                               (240, 428) if quick else E2E_SIZE)
        jpeg = data.davis_data(args.davis_root) if args.davis_root else None
        if jpeg is None and video_root is not None:
            jpeg = data.jpeg_copy(video_root, scratch / "jpeg")
        if "loader" in args.sections:
            from salvid.bench.loader import bench_loader

            size = tuple(model_config(models[0], input_size)["input_size"])  # the first model's input
            results["loader"] = bench_loader(video_root, jpeg, 2 if quick else 4, 24 if quick else 192, size)
        if "e2e" in args.sections:
            from salvid.bench.e2e import bench_e2e

            size = (240, 428) if quick else E2E_SIZE
            count = 24 if quick else 304  # whole batches of 8: a smaller last batch would add a kernel set-up
            frames = {f"{k}x": data.frame_folder(jpeg, k * count, size, scratch / f"frames_{k}x") for k in (1, 2)}
            results["e2e"] = bench_e2e(e2e_models, frames, size, scratch, device, input_size, args.e2e_videos)
        if "evaluate" in args.sections:
            from salvid.bench.evaluate import bench_evaluate

            size = (240, 428) if quick else E2E_SIZE
            count, sequences = (24, 3) if quick else (EVALUATE_FRAMES, EVALUATE_SEQUENCES)
            copy = data.davis_copy(jpeg, count, size, sequences, scratch / "evaluate_data")
            model = args.models[0] if args.models else ("fusion3d" if quick else fusion)
            results["evaluate"] = bench_evaluate(model, copy, scratch, device, input_size)
        if "metrics" in args.sections:
            from salvid.bench.metrics import bench_metrics

            results["metrics"] = bench_metrics(quick, device)
            if "error" in results["metrics"] and args.sections == ["metrics"]:
                raise SystemExit(results["metrics"]["error"])
    from salvid.bench.report import targets

    results["targets"] = targets(results)
    results["seconds"] = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> None:
    """``python -m salvid.bench`` and ``salvid-bench``: run, print the table, write the JSON."""
    from rich.console import Console

    from salvid.bench.report import table
    from salvid.runtime.files import atomic_write_json

    args = parse_args(argv)
    results = run(args)
    atomic_write_json(args.json, results)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table(results))
    console.print(f"{results['seconds']:.0f} s; results: {args.json}")


if __name__ == "__main__":
    main()
